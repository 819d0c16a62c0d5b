// History reads: GET /api/messages/?chat=&before=&limit=50 over a chat of many messages,
// from several keep-alive connections in a closed loop, at random points of the history.
// The chat is filled through REST first; every page read is checked: 200, a full page, ids below
// `before`, newest first.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <random>
#include <stdexcept>

#include "api.hpp"
#include "message_parse.hpp"
#include "proc_stats.hpp"
#include "scenario.hpp"

namespace chatbench {
namespace {

namespace json = boost::json;

struct Fill {
  long long total = 0;
  long long acked = 0;
  std::int64_t first_id = 0;
  std::int64_t last_id = 0;
};

struct Reads {
  Clock::time_point until;
  std::uint64_t requests = 0;
  std::uint64_t bad = 0;
  Histogram latency;
};

// One connection reading pages until the run ends.
asio::awaitable<void> reader(const Options& o, const User& user, std::int64_t chat,
                             const Fill& fill, Reads& reads, std::uint64_t n) {
  auto socket = co_await connect(o.target, n);
  HttpConnection http(std::move(socket), o.target.host_header());
  std::mt19937_64 random(n + 1);
  std::uniform_int_distribution<std::int64_t> before(fill.first_id + o.page_size, fill.last_id + 1);
  const std::string base = "/api/messages/?chat=" + std::to_string(chat) +
                           "&limit=" + std::to_string(o.page_size) + "&before=";
  while (Clock::now() < reads.until) {
    const std::int64_t b = before(random);
    const auto start = Clock::now();
    auto r = co_await http.request("GET", base + std::to_string(b), user.access);
    reads.latency.record(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
    ++reads.requests;
    bool ok = r.status == 200;
    if (ok) {
      const auto doc = json::parse(r.body).as_object();
      const auto& results = doc.at("results").as_array();
      ok = results.size() == static_cast<std::size_t>(o.page_size) &&
           results.front().as_object().at("id").as_int64() < b &&
           results.front().as_object().at("id").as_int64() >
               results.back().as_object().at("id").as_int64();
    }
    if (!ok) ++reads.bad;
  }
}

}  // namespace

asio::awaitable<Report> run_history(const Options& o) {
  auto executor = co_await asio::this_coro::executor;
  auto users = co_await register_users(o.target, o.prefix, 2, 2);
  auto socket = co_await connect(o.target, 0);
  HttpConnection http(std::move(socket), o.target.host_header());
  const std::vector<std::int64_t> members{users[0].id, users[1].id};
  const std::int64_t chat = co_await create_group(http, users[0], members, "history");

  // Fill the chat through REST from several connections (the 201 is the acknowledgement);
  // its members stay offline, so filling costs no fan-out.
  Fill fill;
  fill.total = o.history_messages;
  const std::string body = json::serialize(json::object{
      {"chat", chat}, {"text", std::string(static_cast<std::size_t>(o.text_bytes), 'h')}});
  auto send = [&](HttpConnection& conn, int) -> asio::awaitable<void> {
    auto r = co_await conn.request("POST", "/api/messages/", users[0].access, body);
    auto id = int_field(r.body, R"("id":)");
    if (r.status != 201 || !id) throw std::runtime_error("send: HTTP " + std::to_string(r.status));
    ++fill.acked;
    fill.first_id = fill.first_id == 0 ? *id : std::min(fill.first_id, *id);
    fill.last_id = std::max(fill.last_id, *id);
  };
  const auto fill_start = Clock::now();
  co_await for_each_parallel(o.target, static_cast<int>(fill.total), o.http_connections, send);
  const double fill_seconds = std::chrono::duration<double>(Clock::now() - fill_start).count();

  json::array runs;
  Histogram all;
  for (int run = -1; run < o.runs; ++run) {  // run -1: the warm-up
    Reads reads;
    const double seconds = run < 0 ? o.warmup_seconds : o.run_seconds;
    if (seconds <= 0) continue;
    const auto before = sample_process(o.server_pid);
    const auto start = Clock::now();
    reads.until =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    int running = o.http_connections;
    asio::steady_timer finished(executor, asio::steady_timer::time_point::max());
    for (int c = 0; c < o.http_connections; ++c) {
      asio::co_spawn(executor,
                     reader(o, users[1], chat, fill, reads, static_cast<std::uint64_t>(c + 2)),
                     [&](const std::exception_ptr&) {
                       if (--running == 0) finished.cancel();
                     });
    }
    boost::system::error_code ec;
    co_await finished.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    const auto after = sample_process(o.server_pid);
    if (run < 0) continue;
    all.merge(reads.latency);
    const double cpu = after.cpu_seconds - before.cpu_seconds;
    runs.push_back(json::object{{"requests", reads.requests},
                                {"bad_pages", reads.bad},
                                {"seconds", wall},
                                {"requests_per_second", static_cast<double>(reads.requests) / wall},
                                {"server_cores", cpu / wall},
                                {"requests_per_server_core_second",
                                 cpu > 0 ? static_cast<double>(reads.requests) / cpu : 0.0},
                                {"latency", latency_json(reads.latency)}});
  }
  Report r;
  r["scenario"] = "history";
  r["messages_in_chat"] = fill.acked;
  r["fill_seconds"] = fill_seconds;
  r["fill_messages_per_second"] = static_cast<double>(fill.acked) / fill_seconds;
  r["page_size"] = o.page_size;
  r["connections"] = o.http_connections;
  r["runs"] = std::move(runs);
  r["latency_all_runs"] = latency_json(all);
  json::array buckets;
  for (const auto& [edge, count] : all.buckets()) buckets.push_back(json::array{edge, count});
  r["latency_buckets_ns"] = std::move(buckets);
  co_return r;
}

}  // namespace chatbench
