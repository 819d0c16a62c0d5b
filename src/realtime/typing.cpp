#include "realtime/typing.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>

#include "realtime/broker.hpp"

namespace chat::realtime {

struct Typing::State {
  explicit State(const boost::asio::any_io_executor& ex) : expiry(ex) {}
  boost::asio::steady_timer expiry;
  std::chrono::steady_clock::time_point last_sent{};
  std::uint64_t generation = 0;
};

Typing::~Typing() {
  std::lock_guard lock(mutex_);
  for (auto& [key, state] : states_) state->expiry.cancel();
}

void Typing::publish(std::int64_t chat_id, std::int64_t user_id, const std::string& username,
                     bool is_typing) {
  Ephemeral e;
  e.chat_ids = {chat_id};
  e.exclude_user_id = user_id;
  e.payload = boost::json::serialize(boost::json::object{{"type", "typing"},
                                                         {"chat_id", chat_id},
                                                         {"user_id", user_id},
                                                         {"username", username},
                                                         {"is_typing", is_typing}});
  broker_.publish_ephemeral(e);
}

void Typing::update(std::int64_t chat_id, std::int64_t user_id, const std::string& username,
                    bool is_typing) {
  const auto key = std::make_pair(chat_id, user_id);
  const auto now = std::chrono::steady_clock::now();
  bool send = false;
  {
    std::lock_guard lock(mutex_);
    auto it = states_.find(key);
    if (!is_typing) {
      if (it == states_.end()) return;  // was not typing: nothing to say
      it->second->expiry.cancel();
      states_.erase(it);
      send = true;
    } else {
      if (it == states_.end()) it = states_.emplace(key, std::make_shared<State>(executor_)).first;
      auto state = it->second;
      send = now - state->last_sent >= std::chrono::milliseconds(kRefreshMillis);
      if (send) state->last_sent = now;
      const auto generation = ++state->generation;
      state->expiry.expires_after(std::chrono::seconds(kExpirySeconds));
      state->expiry.async_wait(
          [this, key, state, generation, username](const boost::system::error_code& ec) {
            if (ec) return;
            {
              std::lock_guard lock(mutex_);
              auto current = states_.find(key);
              if (current == states_.end() || current->second != state ||
                  state->generation != generation)
                return;
              states_.erase(current);
            }
            publish(key.first, key.second, username, false);
          });
    }
  }
  if (send) publish(chat_id, user_id, username, is_typing);
}

}  // namespace chat::realtime
