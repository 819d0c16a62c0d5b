// Ingest: many senders, each in a private chat of their own; a message counts when its
// sender gets it back, which the server does only after the commit.
#include <boost/asio/this_coro.hpp>

#include "api.hpp"
#include "scenario.hpp"
#include "traffic.hpp"

namespace chatbench {

asio::awaitable<Report> run_ingest(const Options& o) {
  // users[0] is the other side of every chat; it stays offline.
  auto users = co_await register_users(o.target, o.prefix, o.senders + 1, o.setup_connections);
  const User sink = users[0];
  users.erase(users.begin());
  std::vector<std::int64_t> chats(users.size(), 0);
  auto create = [&](HttpConnection& http, int i) -> asio::awaitable<void> {
    const auto n = static_cast<std::size_t>(i);
    chats[n] = co_await create_private(http, users[n], sink.id);
  };
  co_await for_each_parallel(o.target, static_cast<int>(users.size()), o.setup_connections, create);

  Traffic traffic(o, users, chats);
  co_await traffic.open_sockets();
  std::vector<Route> routes;
  for (int s = 0; s < static_cast<int>(users.size()); ++s) {
    routes.push_back({s, chats[static_cast<std::size_t>(s)], 1});
  }
  Report report = co_await traffic.measure(routes, o.rate > 0 ? o.rate / o.senders : 0);
  report["scenario"] = "ingest";
  report["senders"] = o.senders;
  report["target_messages_per_second"] = o.rate;
  co_return report;
}

}  // namespace chatbench
