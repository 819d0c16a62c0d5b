// The per-user socket limit across a deployment (WS_MAX_SOCKETS_PER_USER): when a user's
// sockets on all nodes together pass it, the oldest close with 1008, wherever they are. One
// node needs none of this: its Hub counts the user's sockets itself, and does so again on
// any node while the deployment's count cannot be reached.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "realtime/broker.hpp"

namespace chat::redis {
class RedisClient;
}

namespace chat::realtime {

class SocketLimit {
 public:
  virtual ~SocketLimit() = default;
  // A socket of the user is opening on this node: counts it and returns its serial
  // (Session::socket_serial(), unique in the deployment), after having the user's oldest
  // sockets past the limit closed, on every node. nullopt when the count cannot be
  // reached: the node's own limit applies to the socket instead.
  virtual boost::asio::awaitable<std::optional<std::int64_t>> opened(std::int64_t user_id) = 0;
  // Whether the socket is still counted: false once it was closed past the limit. The
  // close is sent to the nodes that hear the user, which a socket still opening may not
  // yet be; it asks once it is attached and heard. True when Redis cannot tell.
  virtual boost::asio::awaitable<bool> counted(std::int64_t user_id, std::int64_t serial) = 0;
  // The socket with this serial closed (or never opened). Non-blocking.
  virtual void closed(std::int64_t user_id, std::int64_t serial) = 0;
};

struct RedisSocketLimitOptions {
  std::string prefix = "chat:";
  // This node as Redis presence names it (RedisPresenceOptions::node): a socket counts
  // while its node keeps its presence alive, so a dead node's sockets stop counting.
  std::string node;
  std::size_t max_sockets_per_user = 16;
  std::chrono::milliseconds presence_ttl{60'000};
};

// `evict` closes the sockets past the limit: on this node (Hub::on_session_end) and on the
// others (Broker::publish_session_end).
std::unique_ptr<SocketLimit> make_redis_socket_limit(std::shared_ptr<redis::RedisClient> client,
                                                     RedisSocketLimitOptions options,
                                                     std::function<void(const SessionEnd&)> evict);

}  // namespace chat::realtime
