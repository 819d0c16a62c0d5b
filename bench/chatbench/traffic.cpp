#include "traffic.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <stdexcept>

#include "message_parse.hpp"
#include "proc_stats.hpp"

namespace chatbench {
namespace {

namespace json = boost::json;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Reads a socket until it closes, then reports the close code; the traffic object
// outlives every reader.
asio::awaitable<void> read_socket(std::shared_ptr<WsClient> ws, OnText on_text,
                                  std::function<void(int)> on_close) {
  const int code = co_await ws->read(std::move(on_text));
  on_close(code);
}

}  // namespace

Traffic::Traffic(const Options& o, std::vector<User> users, std::vector<std::int64_t> chat_of)
    : o_(o),
      users_(std::move(users)),
      chat_of_(std::move(chat_of)),
      last_id_(users_.size(), 0),
      received_(users_.size(), 0),
      own_expected_(users_.size(), 0) {
  padding_.assign(static_cast<std::size_t>(std::max(o.text_bytes, 16)), 'x');
}

asio::awaitable<void> Traffic::open_sockets() {
  auto executor = co_await asio::this_coro::executor;
  sockets_.resize(users_.size());
  auto open_one = [&](HttpConnection& /*unused*/, int i) -> asio::awaitable<void> {
    auto socket = co_await connect(o_.target, static_cast<std::uint64_t>(i));
    auto ws = std::make_shared<WsClient>(std::move(socket));
    const std::string path =
        o_.relay ? "/relay" : "/ws/?token=" + users_[static_cast<std::size_t>(i)].access;
    const int status = co_await ws->handshake(path, o_.target.host_header());
    if (status != 101) throw std::runtime_error("socket handshake: HTTP " + std::to_string(status));
    sockets_[static_cast<std::size_t>(i)] = ws;
    OnText on_text = [this, i](std::string_view payload, Clock::time_point at) {
      receive(i, payload, at);
    };
    std::function<void(int)> on_close = [this](int code) { socket_closed(code); };
    asio::co_spawn(executor, read_socket(ws, std::move(on_text), std::move(on_close)),
                   asio::detached);
  };
  co_await for_each_parallel(o_.target, static_cast<int>(users_.size()), o_.setup_connections,
                             open_one);
}

void Traffic::send(int route_index, Clock::time_point intended) {
  const Route& r = routes_[static_cast<std::size_t>(route_index)];
  const auto idx = static_cast<std::int64_t>(pending_.size());
  Phase& phase = phases_.back();
  pending_.push_back({intended, r.recipients, route_index, static_cast<int>(phases_.size() - 1)});
  ++phase.sent;
  if (r.recipients == static_cast<int>(users_.size())) {
    ++all_expected_;
  } else {
    ++own_expected_[static_cast<std::size_t>(r.sender)];
  }
  ++in_flight_[static_cast<std::size_t>(route_index)];
  std::string text = std::to_string(idx);
  text += '|';
  text.append(padding_, 0, padding_.size() - std::min(padding_.size() - 1, text.size()));
  json::object event{{"type", "message"}, {"chat_id", r.chat}, {"text", text}};
  sockets_[static_cast<std::size_t>(r.sender)]->send_text(json::serialize(event));
}

void Traffic::receive(int socket, std::string_view payload, Clock::time_point at) {
  if (!is_message_event(payload)) return;
  auto idx = text_index(payload);
  auto id = int_field(payload, R"("message_id":)");
  if (!idx || !id || *idx < 0 || static_cast<std::size_t>(*idx) >= pending_.size()) {
    ++unknown_;
    return;
  }
  const auto s = static_cast<std::size_t>(socket);
  if (*id <= last_id_[s]) ++out_of_order_;
  last_id_[s] = *id;
  ++received_[s];
  // By value: a windowed sender's next send below may grow pending_.
  const auto slot = static_cast<std::size_t>(*idx);
  const int route = pending_[slot].route;
  const int phase_index = pending_[slot].phase;
  Phase& phase = phases_[static_cast<std::size_t>(phase_index)];
  ++phase.deliveries;
  if (--pending_[slot].remaining == 0) {
    phase.latency.record(
        std::chrono::duration_cast<std::chrono::nanoseconds>(at - pending_[slot].intended).count());
    phase.last_receipt = at;
    if (++phase.completed == phase.sent && !phase.sending && phase_done_) phase_done_->cancel();
  }
  if (socket == routes_[static_cast<std::size_t>(route)].sender) {
    // The sender's own copy is its acknowledgement: a windowed sender sends the next one.
    --in_flight_[static_cast<std::size_t>(route)];
    if (o_.rate <= 0 && phases_.back().sending &&
        phase_index + 1 == static_cast<int>(phases_.size())) {
      send(route, Clock::now());
    }
  }
}

// A traffic socket closed by the server: what was in flight to it will never arrive, so
// a phase waiting for it ends now instead of at its time limit.
void Traffic::socket_closed(int code) {
  ++closed_sockets_;
  close_codes_.push_back(code);
  if (phase_done_) phase_done_->cancel();
}

asio::awaitable<void> Traffic::pace(int route_index, double rate, Clock::time_point until) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
  // Routes start spread over one interval, so sends do not all fall on the same instant.
  auto next = Clock::now() + interval * route_index / std::max<std::size_t>(routes_.size(), 1);
  while (next < until) {
    timer.expires_at(next);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    send(route_index, next);  // latency counts from here, however late the send
    next += interval;
  }
}

asio::awaitable<Report> Traffic::run_phase(const std::vector<Route>& routes, double route_rate,
                                           bool warmup) {
  auto executor = co_await asio::this_coro::executor;
  phases_.emplace_back();
  Phase& phase = phases_.back();
  const double seconds = warmup ? o_.warmup_seconds : o_.run_seconds;
  const auto before = o_.server_pid > 0 ? sample_process(o_.server_pid) : ProcSample{};
  phase.start = Clock::now();
  const auto until = phase.start + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(seconds));
  asio::steady_timer clock(executor);
  if (route_rate > 0) {
    int running = static_cast<int>(routes.size());
    asio::steady_timer paced(executor, asio::steady_timer::time_point::max());
    for (int r = 0; r < static_cast<int>(routes.size()); ++r) {
      asio::co_spawn(executor, pace(r, route_rate, until), [&](const std::exception_ptr&) {
        if (--running == 0) paced.cancel();
      });
    }
    boost::system::error_code ec;
    co_await paced.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  } else {
    for (int r = 0; r < static_cast<int>(routes.size()); ++r) {
      for (int w = 0; w < o_.window; ++w) send(r, Clock::now());
    }
    clock.expires_at(until);
    boost::system::error_code ec;
    co_await clock.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  phase.sending = false;
  const auto send_end = Clock::now();
  // Everything sent must arrive; bounded wait.
  if (phase.completed < phase.sent) {
    phase_done_ = std::make_unique<asio::steady_timer>(executor, std::chrono::seconds(30));
    boost::system::error_code ec;
    co_await phase_done_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    phase_done_.reset();
  }
  const auto after = o_.server_pid > 0 ? sample_process(o_.server_pid) : ProcSample{};
  const double wall = seconds_between(phase.start, std::max(phase.last_receipt, send_end));
  const double cpu = after.cpu_seconds - before.cpu_seconds;
  Report r;
  r["messages"] = phase.sent;
  r["complete"] = phase.completed == phase.sent;
  r["deliveries"] = phase.deliveries;
  r["seconds"] = wall;
  r["messages_per_second"] = static_cast<double>(phase.completed) / wall;
  r["deliveries_per_second"] = static_cast<double>(phase.deliveries) / wall;
  r["server_cpu_seconds"] = cpu;
  r["server_cores"] = cpu / wall;
  r["deliveries_per_server_core_second"] =
      cpu > 0 ? static_cast<double>(phase.deliveries) / cpu : 0.0;
  r["messages_per_server_core_second"] = cpu > 0 ? static_cast<double>(phase.completed) / cpu : 0.0;
  r["latency"] = latency_json(phase.latency);
  co_return r;
}

asio::awaitable<Report> Traffic::measure(const std::vector<Route>& routes, double route_rate) {
  routes_ = routes;
  in_flight_.assign(routes.size(), 0);
  Report report;
  if (o_.warmup_seconds > 0) report["warmup"] = co_await run_phase(routes, route_rate, true);
  json::array runs;
  Histogram all;
  for (int i = 0; i < o_.runs; ++i) {
    auto run = co_await run_phase(routes, route_rate, false);
    runs.push_back(std::move(run));
    all.merge(phases_.back().latency);
  }
  report["runs"] = std::move(runs);
  report["latency_all_runs"] = latency_json(all);
  json::array buckets;
  for (const auto& [edge, count] : all.buckets()) buckets.push_back(json::array{edge, count});
  report["latency_buckets_ns"] = std::move(buckets);
  // Every socket got exactly what was sent to it, in id order.
  std::uint64_t wrong_counts = 0;
  for (std::size_t s = 0; s < users_.size(); ++s) {
    if (received_[s] != all_expected_ + own_expected_[s]) ++wrong_counts;
  }
  json::array codes;
  for (int c : close_codes_) codes.push_back(c);
  report["check"] = json::object{
      {"sockets_with_wrong_count", wrong_counts},
      {"out_of_order", out_of_order_},
      {"unrecognised", unknown_},
      {"sockets_closed_by_server", closed_sockets_},
      {"close_codes", std::move(codes)},
      {"ok", wrong_counts == 0 && out_of_order_ == 0 && unknown_ == 0 && closed_sockets_ == 0}};
  co_return report;
}

}  // namespace chatbench
