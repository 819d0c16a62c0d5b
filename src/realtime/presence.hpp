// Who is online on this node: a user is online while one of their sockets is open. The
// first socket and the last one are announced as user_status to the members of the
// user's chats. (Across nodes, presence is shared through Redis in the scale-out build.)
#pragma once

#include <boost/asio/awaitable.hpp>

#include <mutex>
#include <optional>
#include <unordered_map>

#include "common/time.hpp"
#include "users/online_users.hpp"

namespace chat::store {
class Store;
}

namespace chat::realtime {

class Broker;

class Presence final : public users::OnlineUsers {
 public:
  Presence(store::Store& store, Broker& broker) : store_(store), broker_(broker) {}

  boost::asio::awaitable<void> connected(std::int64_t user_id);
  boost::asio::awaitable<void> disconnected(std::int64_t user_id);
  [[nodiscard]] bool is_online(std::int64_t user_id) const override;

 private:
  boost::asio::awaitable<void> announce(std::int64_t user_id, bool online,
                                        std::optional<Micros> last_seen);

  store::Store& store_;
  Broker& broker_;
  mutable std::mutex mutex_;
  std::unordered_map<std::int64_t, int> sockets_;
};

}  // namespace chat::realtime
