// Who is online right now, as far as the REST answers need it (`is_online`). The real-time
// layer (realtime/presence) keeps it up to date from live sockets, on every node.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <vector>

namespace chat::users {

// Across the deployment, for the admin pages.
struct OnlineCounts {
  std::int64_t users = 0;    // online users (in their grace period too)
  std::int64_t sockets = 0;  // open sockets of every kind
};

class OnlineUsers {
 public:
  virtual ~OnlineUsers() = default;
  // One answer per id, in order. Thread-safe; completes on the caller's executor. When
  // presence cannot be read (Redis away), everyone is reported offline rather than failing.
  virtual boost::asio::awaitable<std::vector<bool>> online(std::vector<std::int64_t> user_ids) = 0;
  // Zero when presence cannot be read. Thread-safe.
  virtual boost::asio::awaitable<OnlineCounts> counts() = 0;
};

}  // namespace chat::users
