// Typing indicators from this node's sockets: each one goes to every node of the chat as
// it came (not stored); what the members' sockets see, throttling and the five-second end
// included, is decided where they are (TypingRelay).
#pragma once

#include <cstdint>
#include <string>

namespace chat::realtime {

class Broker;

class Typing {
 public:
  explicit Typing(Broker& broker) : broker_(broker) {}

  // The caller has checked membership.
  void update(std::int64_t chat_id, std::int64_t user_id, const std::string& username,
              bool is_typing);

 private:
  Broker& broker_;
};

}  // namespace chat::realtime
