// The broker of a deployment with several nodes: Redis pub/sub, one channel per chat and one
// per user (Centrifuge's broker_redis). Redis pub/sub is at-most-once, so the node also
// reads the event log: a chat it starts hearing and every chat after a lost connection are
// brought up to date from the database, and nothing committed goes missing.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <memory>
#include <string>

#include "realtime/broker.hpp"

namespace chat::redis {
class RedisClient;
}
namespace chat::store {
class ChatStore;
}

namespace chat::realtime {

struct RedisBrokerOptions {
  std::string host;
  int port = 6379;
  std::string prefix = "chat:";         // of every channel
  std::size_t max_held_events = 10000;  // REDIS_MAX_HELD_EVENTS
};

// `client` publishes (shared with presence); the broker opens its own subscriber connection.
std::unique_ptr<Broker> make_redis_broker(const boost::asio::any_io_executor& executor,
                                          std::shared_ptr<redis::RedisClient> client,
                                          RedisBrokerOptions options, store::ChatStore& log);

}  // namespace chat::realtime
