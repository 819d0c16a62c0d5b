// Idle connections: many authenticated user sockets, each user in two chats, doing
// nothing but keepalive. Reports the server's resident memory per socket and the CPU it
// spends while they idle.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <stdexcept>

#include "api.hpp"
#include "proc_stats.hpp"
#include "scenario.hpp"

namespace chatbench {
namespace {

asio::awaitable<void> sleep_for(double seconds) {
  asio::steady_timer t(
      co_await asio::this_coro::executor,
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> hold(std::shared_ptr<WsClient> ws, int* closed) {
  auto noop = [](std::string_view, Clock::time_point) {};
  co_await ws->read(noop);
  ++*closed;
}

}  // namespace

asio::awaitable<Report> run_idle(const Options& o) {
  auto executor = co_await asio::this_coro::executor;
  const int n = o.sockets;
  auto users = co_await register_users(o.target, o.prefix, n, o.setup_connections);
  // A ring of private chats: user i talks with i+1, so everyone is in two chats.
  auto create = [&](HttpConnection& http, int i) -> asio::awaitable<void> {
    const auto a = static_cast<std::size_t>(i);
    const auto b = static_cast<std::size_t>((i + 1) % n);
    co_await create_private(http, users[a], users[b].id);
  };
  co_await for_each_parallel(o.target, n, o.setup_connections, create);
  co_await sleep_for(1);
  const ProcSample before = sample_process(o.server_pid);

  std::vector<std::shared_ptr<WsClient>> sockets(static_cast<std::size_t>(n));
  int closed = 0;
  const auto open_start = Clock::now();
  auto open_one = [&](HttpConnection&, int i) -> asio::awaitable<void> {
    auto socket = co_await connect(o.target, static_cast<std::uint64_t>(i));
    auto ws = std::make_shared<WsClient>(std::move(socket));
    const std::string path = "/ws/?token=" + users[static_cast<std::size_t>(i)].access;
    if (co_await ws->handshake(path, o.target.host_header()) != 101) {
      throw std::runtime_error("socket handshake refused");
    }
    sockets[static_cast<std::size_t>(i)] = ws;
    asio::co_spawn(executor, hold(ws, &closed), asio::detached);
  };
  co_await for_each_parallel(o.target, n, o.setup_connections, open_one);
  const double open_seconds = std::chrono::duration<double>(Clock::now() - open_start).count();
  // Presence announcements and the first keepalives settle, then the quiet period.
  co_await sleep_for(3);
  const ProcSample open = sample_process(o.server_pid);
  co_await sleep_for(o.idle_seconds);
  const ProcSample idle = sample_process(o.server_pid);

  const double per_socket_kib =
      static_cast<double>(open.rss_kib - before.rss_kib) / static_cast<double>(n);
  const double idle_cores = (idle.cpu_seconds - open.cpu_seconds) / o.idle_seconds;
  Report r;
  r["scenario"] = "idle";
  r["sockets"] = n;
  r["sockets_closed_by_server"] = closed;
  r["handshakes_per_second"] = static_cast<double>(n) / open_seconds;
  r["server_rss_kib_before"] = before.rss_kib;
  r["server_rss_kib_open"] = open.rss_kib;
  r["server_rss_kib_per_socket"] = per_socket_kib;
  r["server_peak_rss_kib"] = highest_rss({before, open, idle});
  r["idle_seconds"] = o.idle_seconds;
  r["server_cores_while_idle"] = idle_cores;
  // The arithmetic for a million sockets, from what was measured.
  r["projected_rss_gib_for_1m_sockets"] = per_socket_kib * 1e6 / (1024.0 * 1024.0);
  r["projected_cores_for_1m_sockets"] = idle_cores * 1e6 / static_cast<double>(n);
  for (auto& ws : sockets) {
    if (ws) ws->close();
  }
  co_await sleep_for(1);
  co_return r;
}

}  // namespace chatbench
