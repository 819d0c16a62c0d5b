// The WebSocket door to the service layer: decodes a client event, calls the same service
// function REST calls, and answers errors (and pong) to the sending socket only. What
// a change means for everyone arrives through the event log and the hub, as for REST.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "store/user_store.hpp"

namespace chat::chats {
class ChatService;
class MessageService;
}  // namespace chat::chats
namespace chat::store {
class Store;
}

namespace chat::realtime {

class Typing;

struct ClientContext {
  store::UserRecord user;
  std::int64_t chat_id = 0;  // the socket's chat; 0 on the user socket
};

class ClientEvents {
 public:
  ClientEvents(chats::ChatService& chats, chats::MessageService& messages, Typing& typing,
               store::Store& store)
      : chats_(chats), messages_(messages), typing_(typing), store_(store) {}

  // Frames for the sending socket alone (errors, pong, the acknowledgement of a retried
  // message). Never throws for bad input; a database outage is an `unavailable` error.
  boost::asio::awaitable<std::vector<std::string>> handle(const ClientContext& ctx,
                                                          std::string_view text);

 private:
  boost::asio::awaitable<std::vector<std::string>> handle_event(const ClientContext& ctx,
                                                                const boost::json::object& o,
                                                                const std::string& type);

  chats::ChatService& chats_;
  chats::MessageService& messages_;
  Typing& typing_;
  store::Store& store_;
};

}  // namespace chat::realtime
