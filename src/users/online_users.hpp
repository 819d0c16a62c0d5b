// Who is online right now, as far as the REST answers need it (`is_online`). The real-time
// layer (realtime/presence) keeps it up to date from live sockets.
#pragma once

#include <cstdint>

namespace chat::users {

class OnlineUsers {
 public:
  virtual ~OnlineUsers() = default;
  // Thread-safe; called from any I/O thread.
  [[nodiscard]] virtual bool is_online(std::int64_t user_id) const = 0;
};

}  // namespace chat::users
