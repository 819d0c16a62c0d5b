// Reconnect storm: many user sockets, each user in two chats, all drop at once; messages
// are sent to some chats while they are away; then every client reconnects within a
// few seconds with `since=` its last seq. Reports authenticated handshakes per second and
// checks every replay: each client gets exactly the messages of its chats it missed,
// once each, then `synced`.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <set>
#include <stdexcept>

#include "api.hpp"
#include "message_parse.hpp"
#include "proc_stats.hpp"
#include "scenario.hpp"

namespace chatbench {
namespace {

namespace json = boost::json;

struct Client {
  std::shared_ptr<WsClient> ws;
  std::int64_t seq = 0;  // the newest seq seen
  bool leaving = false;  // closing: what still arrives is not processed (as an app that quit)
  bool synced = false;
  std::set<std::int64_t> replayed;  // message ids replayed after the reconnect
  std::uint64_t duplicates = 0;
};

struct Storm {
  int waiting = 0;  // clients not yet synced
  std::unique_ptr<asio::steady_timer> all_synced;
  Clock::time_point last_open;
  Clock::time_point last_synced;
  std::uint64_t refused = 0;
  std::uint64_t failed_connects = 0;
};

asio::awaitable<void> sleep_for(double seconds) {
  asio::steady_timer t(
      co_await asio::this_coro::executor,
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

// Reads a socket: seqs, replayed messages, and `synced` (which also counts the client in).
asio::awaitable<void> listen(Client& c, Storm& storm, bool counting) {
  auto ws = c.ws;
  auto on_text = [&c, &storm, counting](std::string_view payload, Clock::time_point at) {
    if (c.leaving) return;
    if (auto seq = int_field(payload, R"("seq":)")) c.seq = std::max(c.seq, *seq);
    if (payload.find(R"("type":"synced")") != std::string_view::npos) {
      if (!c.synced) {
        c.synced = true;
        if (counting) {
          storm.last_synced = std::max(storm.last_synced, at);
          if (--storm.waiting == 0 && storm.all_synced) storm.all_synced->cancel();
        }
      }
      return;
    }
    if (counting && !c.synced && is_message_event(payload)) {
      if (auto id = int_field(payload, R"("message_id":)")) {
        if (!c.replayed.insert(*id).second) ++c.duplicates;
      }
    }
  };
  co_await ws->read(on_text);
}

asio::awaitable<void> open(const Options& o, const User& u, Client& c, Storm& storm,
                           std::uint64_t n, bool counting) {
  tcp::socket socket(co_await asio::this_coro::executor);
  try {
    socket = co_await connect(o.target, n);
  } catch (const std::exception&) {
    ++storm.failed_connects;
    if (counting && --storm.waiting == 0 && storm.all_synced) storm.all_synced->cancel();
    co_return;
  }
  auto ws = std::make_shared<WsClient>(std::move(socket));
  const std::string path = "/ws/?token=" + u.access + "&since=" + std::to_string(c.seq);
  const int status = co_await ws->handshake(path, o.target.host_header());
  if (status != 101) {
    ++storm.refused;
    if (counting && --storm.waiting == 0 && storm.all_synced) storm.all_synced->cancel();
    co_return;
  }
  if (counting) storm.last_open = std::max(storm.last_open, Clock::now());
  c.ws = ws;
  c.synced = false;
  c.leaving = false;
  co_await listen(c, storm, counting);
}

// Everyone leaves; one message goes to every tenth chat meanwhile; then every client comes
// back within `storm_seconds` with since= its last seq. One run of the storm, checked.
asio::awaitable<json::object> storm_once(const Options& o, const std::vector<User>& users,
                                         const std::vector<std::int64_t>& ring,
                                         std::vector<Client>& clients) {
  auto executor = co_await asio::this_coro::executor;
  const int n = static_cast<int>(clients.size());
  for (auto& c : clients) {
    c.leaving = true;
    if (c.ws) c.ws->close();
  }
  co_await sleep_for(3);
  // Their descriptors go too (the storm needs as many again).
  for (auto& c : clients) {
    c.ws.reset();
    c.replayed.clear();
    c.duplicates = 0;
  }

  // While everyone is away: one message in every tenth chat, from its first member.
  std::vector<int> missed(static_cast<std::size_t>(n), 0);
  std::vector<int> chosen;
  for (int i = 0; i < n; i += 10) chosen.push_back(i);
  const std::string text = std::string(static_cast<std::size_t>(o.text_bytes), 'r');
  auto send = [&](HttpConnection& http, int k) -> asio::awaitable<void> {
    const auto i = static_cast<std::size_t>(chosen[static_cast<std::size_t>(k)]);
    const std::string body = json::serialize(json::object{{"chat", ring[i]}, {"text", text}});
    auto r = co_await http.request("POST", "/api/messages/", users[i].access, body);
    if (r.status != 201) throw std::runtime_error("send: HTTP " + std::to_string(r.status));
    ++missed[i];
    ++missed[(i + 1) % missed.size()];
  };
  co_await for_each_parallel(o.target, static_cast<int>(chosen.size()), o.setup_connections, send);

  // The storm: every client back within `storm_seconds`, evenly spread.
  Storm storm;
  storm.waiting = n;
  storm.all_synced = std::make_unique<asio::steady_timer>(executor, std::chrono::seconds(120));
  const auto before = sample_process(o.server_pid);
  const auto start = Clock::now();
  const auto spacing = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(o.storm_seconds / static_cast<double>(n)));
  asio::steady_timer pace(executor);
  static std::uint64_t connection = 0;  // source addresses in turn across storms
  for (int i = 0; i < n; ++i) {
    pace.expires_at(start + spacing * i);
    boost::system::error_code ec;
    co_await pace.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    asio::co_spawn(executor,
                   open(o, users[static_cast<std::size_t>(i)], clients[static_cast<std::size_t>(i)],
                        storm, ++connection, true),
                   asio::detached);
  }
  {
    boost::system::error_code ec;
    co_await storm.all_synced->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  const auto after = sample_process(o.server_pid);
  const double open_seconds = std::chrono::duration<double>(storm.last_open - start).count();
  const double sync_seconds = std::chrono::duration<double>(storm.last_synced - start).count();

  std::uint64_t wrong = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t not_synced = 0;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const auto& c = clients[i];
    if (!c.synced) ++not_synced;
    if (c.replayed.size() != static_cast<std::size_t>(missed[i])) ++wrong;
    duplicates += c.duplicates;
  }
  const double cpu = after.cpu_seconds - before.cpu_seconds;
  json::object r;
  r["handshakes_per_second"] =
      static_cast<double>(n - static_cast<int>(storm.refused)) / open_seconds;
  r["seconds_to_last_handshake"] = open_seconds;
  r["seconds_to_last_synced"] = sync_seconds;
  r["server_cores"] = cpu / std::max(sync_seconds, 1e-9);
  r["handshakes_per_server_core_second"] = cpu > 0 ? static_cast<double>(n) / cpu : 0.0;
  r["messages_missed_and_replayed"] = static_cast<std::int64_t>(chosen.size());
  r["check"] = json::object{{"refused", storm.refused},
                            {"failed_connects", storm.failed_connects},
                            {"not_synced", not_synced},
                            {"clients_with_wrong_replay", wrong},
                            {"duplicates", duplicates},
                            {"ok", storm.refused == 0 && storm.failed_connects == 0 &&
                                       not_synced == 0 && wrong == 0 && duplicates == 0}};
  co_return r;
}

}  // namespace

asio::awaitable<Report> run_reconnect(const Options& o) {
  auto executor = co_await asio::this_coro::executor;
  const int n = o.sockets;
  auto users = co_await register_users(o.target, o.prefix, n, o.setup_connections);
  // A ring of private chats: user i talks with i+1, so everyone is in two chats.
  std::vector<std::int64_t> ring(static_cast<std::size_t>(n));
  auto create = [&](HttpConnection& http, int i) -> asio::awaitable<void> {
    const auto a = static_cast<std::size_t>(i);
    ring[a] = co_await create_private(http, users[a], users[(a + 1) % users.size()].id);
  };
  co_await for_each_parallel(o.target, n, o.setup_connections, create);

  // Everyone online once (since=0: the app's first start), to learn where the log stands.
  std::vector<Client> clients(static_cast<std::size_t>(n));
  Storm first;
  first.waiting = n;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(executor,
                   open(o, users[static_cast<std::size_t>(i)], clients[static_cast<std::size_t>(i)],
                        first, static_cast<std::uint64_t>(i), false),
                   asio::detached);
    if (i % 500 == 499) co_await sleep_for(0.2);  // a gentle start, unlike the storm
  }
  for (int wait = 0; wait < 600; ++wait) {
    bool all = true;
    for (const auto& c : clients) all = all && c.synced;
    if (all) break;
    co_await sleep_for(0.1);
  }
  co_await sleep_for(2);  // presence announcements settle; their seqs are learned too

  json::array runs;
  bool all_ok = true;
  for (int run = 0; run < std::max(o.runs, 1); ++run) {
    auto storm = co_await storm_once(o, users, ring, clients);
    all_ok = all_ok && storm.at("check").as_object().at("ok").as_bool();
    runs.push_back(std::move(storm));
  }
  for (auto& c : clients) {
    if (c.ws) c.ws->close();
  }
  co_await sleep_for(1);
  Report r;
  r["scenario"] = "reconnect";
  r["sockets"] = n;
  r["storm_seconds"] = o.storm_seconds;
  r["runs"] = std::move(runs);
  r["check"] = json::object{{"ok", all_ok}};
  co_return r;
}

}  // namespace chatbench
