// What this node's sockets see of typing indicators, from the updates every node hears
// (Typing): a start, a refresh at most once a second, and a stop, sent by this node itself
// when no refresh has come for five seconds, or right after a message of the typer's in
// that chat (what they typed has arrived). Each node keeps its own state, so an indicator
// ends on time even when the typer's node died or the stop came from another node.
// Stands between the broker and the Hub; everything but typing passes straight through.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "realtime/broker.hpp"

namespace chat::realtime {

class TypingRelay final : public BrokerHandler {
 public:
  static constexpr std::chrono::seconds kExpiry{5};
  static constexpr std::chrono::milliseconds kRefresh{1000};

  // The times are the API's; tests shorten them.
  TypingRelay(BrokerHandler& next, boost::asio::any_io_executor executor,
              std::chrono::milliseconds expiry = kExpiry,
              std::chrono::milliseconds refresh = kRefresh)
      : next_(next), executor_(std::move(executor)), expiry_(expiry), refresh_(refresh) {}
  ~TypingRelay() override;
  TypingRelay(const TypingRelay&) = delete;
  TypingRelay& operator=(const TypingRelay&) = delete;

  void on_logged(const store::EventRecord& event) override;
  void on_ephemeral(const Ephemeral& event) override;
  void on_session_end(const SessionEnd& end) override { next_.on_session_end(end); }

 private:
  struct State;
  using Key = std::pair<std::int64_t, std::int64_t>;  // (chat, user)

  void typing(const TypingUpdate& t);
  // Under the lock: ends the indicator of `key`, if any, telling the sockets.
  void end_locked(const Key& key);
  void send(const TypingUpdate& t, bool is_typing);

  BrokerHandler& next_;
  boost::asio::any_io_executor executor_;
  std::chrono::milliseconds expiry_;
  std::chrono::milliseconds refresh_;
  std::mutex mutex_;
  std::map<Key, std::shared_ptr<State>> states_;
};

// The typing event as sockets get it.
std::string typing_event_json(const TypingUpdate& t, bool is_typing);

}  // namespace chat::realtime
