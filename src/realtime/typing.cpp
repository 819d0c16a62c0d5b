#include "realtime/typing.hpp"

#include "realtime/broker.hpp"

namespace chat::realtime {

void Typing::update(std::int64_t chat_id, std::int64_t user_id, const std::string& username,
                    bool is_typing) {
  // Every refresh goes out, unthrottled: each node times the indicator's end from the last
  // refresh it heard. The socket's event rate limit bounds how many there are.
  Ephemeral e;
  e.chat_ids = {chat_id};
  e.exclude_user_id = user_id;
  e.typing = TypingUpdate{chat_id, user_id, username, is_typing};
  broker_.publish_ephemeral(e);
}

}  // namespace chat::realtime
