// Fan-out: one group whose members are all online; a few of them send, every member must
// receive every message once and in id order. Latency is from the intended send time
// (open loop) to the last member's receipt.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <stdexcept>

#include "api.hpp"
#include "message_parse.hpp"
#include "proc_stats.hpp"
#include "scenario.hpp"
#include "traffic.hpp"

namespace chatbench {

asio::awaitable<Report> run_fanout(const Options& o) {
  auto users = co_await register_users(o.target, o.prefix, o.members, o.setup_connections);
  std::vector<std::int64_t> ids;
  for (const auto& u : users) ids.push_back(u.id);
  auto socket = co_await connect(o.target, 0);
  HttpConnection http(std::move(socket), o.target.host_header());
  const std::int64_t chat = co_await create_group(http, users[0], ids, "fanout");

  Traffic traffic(o, users, std::vector<std::int64_t>(users.size(), chat));
  co_await traffic.open_sockets();
  // Senders are the first members; everyone (senders too) receives every message.
  std::vector<Route> routes;
  for (int s = 0; s < o.senders; ++s) routes.push_back({s, chat, o.members});
  Report report = co_await traffic.measure(routes, o.rate > 0 ? o.rate / o.members : 0);
  report["scenario"] = "fanout";
  report["members"] = o.members;
  report["senders"] = o.senders;
  report["target_deliveries_per_second"] = o.rate;
  co_return report;
}

}  // namespace chatbench
