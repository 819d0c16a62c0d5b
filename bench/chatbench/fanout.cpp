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
  std::vector<User> users;
  std::int64_t chat = 1;
  if (o.relay) {
    // The relay knows no users or chats: every socket connected to it is a member.
    for (int i = 0; i < o.members; ++i) users.push_back({i + 1, "relay" + std::to_string(i), ""});
  } else {
    users = co_await register_users(o.target, o.prefix, o.members, o.setup_connections);
    std::vector<std::int64_t> ids;
    for (const auto& u : users) ids.push_back(u.id);
    auto socket = co_await connect(o.target, 0);
    HttpConnection http(std::move(socket), o.target.host_header());
    chat = co_await create_group(http, users[0], ids, "fanout");
  }

  Traffic traffic(o, users, std::vector<std::int64_t>(users.size(), chat));
  co_await traffic.open_sockets();
  // Senders are the first members; everyone (senders too) receives every message.
  std::vector<Route> routes;
  for (int s = 0; s < o.senders; ++s) routes.push_back({s, chat, o.members});
  // `rate` is deliveries/s in all: each message reaches every member, and the senders
  // share the rate.
  const double route_rate = o.rate > 0 ? o.rate / o.members / o.senders : 0;
  Report report = co_await traffic.measure(routes, route_rate);
  report["scenario"] = o.relay ? "fanout through the bare relay" : "fanout";
  report["members"] = o.members;
  report["senders"] = o.senders;
  report["target_deliveries_per_second"] = o.rate;
  co_return report;
}

}  // namespace chatbench
