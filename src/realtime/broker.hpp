// Carries events between the nodes of a deployment. The broker never knows about
// sockets: what arrives is handed to a BrokerHandler (the Hub), as in Centrifuge.
// Implementations: in-process (one node, here) and Redis pub/sub (several nodes).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/chat_records.hpp"

namespace chat::realtime {

// An event that is not logged: typing and user_status.
struct Ephemeral {
  std::vector<std::int64_t> chat_ids;  // sent to the members of these chats...
  std::int64_t exclude_user_id = 0;    // ...except this user's own sockets
  std::string payload;                 // the event's JSON
};

class BrokerHandler {
 public:
  virtual ~BrokerHandler() = default;
  // Called in publish order for logged events of one chat; may be called from any thread.
  virtual void on_logged(const store::EventRecord& event) = 0;
  virtual void on_ephemeral(const Ephemeral& event) = 0;
};

class Broker {
 public:
  virtual ~Broker() = default;
  // Set once before publishing.
  virtual void set_handler(BrokerHandler* handler) = 0;
  // At-most-once delivery to every node's handler; logged events keep their order per
  // chat. Non-blocking.
  virtual void publish_logged(const store::EventRecord& event) = 0;
  virtual void publish_ephemeral(const Ephemeral& event) = 0;
};

// One node: publishing is calling the handler.
std::unique_ptr<Broker> make_in_process_broker();

}  // namespace chat::realtime
