#include "realtime/typing_relay.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <climits>

namespace chat::realtime {

struct TypingRelay::State {
  State(const boost::asio::any_io_executor& ex, TypingUpdate t)
      : expiry(ex), update(std::move(t)) {}
  boost::asio::steady_timer expiry;
  TypingUpdate update;  // the typer, as the stop names them
  std::chrono::steady_clock::time_point last_sent{};
  std::uint64_t generation = 0;
};

std::string typing_event_json(const TypingUpdate& t, bool is_typing) {
  return boost::json::serialize(boost::json::object{{"type", "typing"},
                                                    {"chat_id", t.chat_id},
                                                    {"user_id", t.user_id},
                                                    {"username", t.username},
                                                    {"is_typing", is_typing}});
}

TypingRelay::~TypingRelay() {
  std::lock_guard lock(mutex_);
  for (auto& [key, state] : states_) state->expiry.cancel();
}

void TypingRelay::on_logged(const store::EventRecord& event) {
  next_.on_logged(event);
  if (event.type != "message") return;
  std::lock_guard lock(mutex_);
  // Most messages come from chats where nobody is typing: no need to read the sender then.
  auto it = states_.lower_bound(Key{event.chat_id, INT64_MIN});
  if (it == states_.end() || it->first.first != event.chat_id) return;
  boost::system::error_code ec;
  const auto payload = boost::json::parse(event.payload, ec);
  const auto* o = ec ? nullptr : payload.if_object();
  const auto* sender = o == nullptr ? nullptr : o->if_contains("sender_id");
  if (sender != nullptr && sender->is_int64()) end_locked({event.chat_id, sender->get_int64()});
}

void TypingRelay::end_locked(const Key& key) {
  auto it = states_.find(key);
  if (it == states_.end()) return;
  it->second->expiry.cancel();
  const TypingUpdate t = it->second->update;
  states_.erase(it);
  send(t, false);
}

void TypingRelay::on_ephemeral(const Ephemeral& event) {
  if (event.typing) {
    typing(*event.typing);
  } else {
    next_.on_ephemeral(event);
  }
}

void TypingRelay::send(const TypingUpdate& t, bool is_typing) {
  Ephemeral e;
  e.chat_ids = {t.chat_id};
  e.exclude_user_id = t.user_id;
  e.payload = typing_event_json(t, is_typing);
  next_.on_ephemeral(e);
}

// Passed on under the lock, as the expiry does: a refresh and an expiry racing on two
// threads reach the sockets in the order they changed the state. (The Hub takes a lock of
// its own and never calls back.)
void TypingRelay::typing(const TypingUpdate& t) {
  const Key key{t.chat_id, t.user_id};
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  auto it = states_.find(key);
  if (!t.is_typing) {
    end_locked(key);  // not typing here (or already ended): nothing to say
    return;
  }
  if (it == states_.end()) it = states_.emplace(key, std::make_shared<State>(executor_, t)).first;
  auto state = it->second;
  const bool forward = now - state->last_sent >= refresh_;
  if (forward) state->last_sent = now;
  const auto generation = ++state->generation;
  state->expiry.expires_after(expiry_);
  // Captures the relay: the timer is cancelled in the destructor, and a cancelled wait
  // returns before touching it.
  state->expiry.async_wait([this, key, state, generation](const boost::system::error_code& ec) {
    if (ec) return;
    std::lock_guard lock(mutex_);
    auto current = states_.find(key);
    if (current == states_.end() || current->second != state || state->generation != generation) {
      return;
    }
    end_locked(key);
  });
  if (forward) send(t, true);
}

}  // namespace chat::realtime
