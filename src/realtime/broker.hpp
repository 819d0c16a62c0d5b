// Carries events between the nodes of a deployment. The broker never knows about
// sockets: what arrives is handed to a BrokerHandler (the Hub), as in Centrifuge.
// Implementations: in-process (one node) and Redis pub/sub (several nodes).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/chat_records.hpp"

namespace chat::realtime {

// A typing indicator as the typer's node heard it. Every node that hears it decides what
// its own sockets see (TypingRelay): when each node ends an indicator by itself, it ends
// even when the typer's node is gone, and a stop from any node ends it everywhere.
struct TypingUpdate {
  std::int64_t chat_id = 0;
  std::int64_t user_id = 0;
  std::string username;
  bool is_typing = false;
};

// An event that is not logged: typing and user_status.
struct Ephemeral {
  std::vector<std::int64_t> chat_ids;  // sent to the members of these chats...
  std::int64_t exclude_user_id = 0;    // ...except this user's own sockets
  std::string payload;                 // the event's JSON; for typing, written by TypingRelay
  std::optional<TypingUpdate> typing;  // set for typing (chat_ids: its chat; excluded: typer)
};

// Sockets of a user, on every node, are to close with this code: all of them (the account
// was deactivated), those opened in one login session (it was logged out), or the ones
// numbered in `sockets` (the oldest past the per-user limit, see SocketLimit).
// Idempotent, so hearing it twice does no harm.
struct SessionEnd {
  std::int64_t user_id = 0;
  int code = 0;
  std::string reason;
  std::string session;                // empty: every socket of the user (unless `sockets`)
  std::vector<std::int64_t> sockets;  // Session::socket_serial() of each; none: by `session`
};

class BrokerHandler {
 public:
  virtual ~BrokerHandler() = default;
  // Logged events, in commit order within a chat, each once; one call at a time.
  virtual void on_logged(const store::EventRecord& event) = 0;
  virtual void on_ephemeral(const Ephemeral& event) = 0;
  virtual void on_session_end(const SessionEnd& end) = 0;
};

class Broker {
 public:
  virtual ~Broker() = default;
  // Set once before publishing.
  virtual void set_handler(BrokerHandler* handler) = 0;

  // Hands one transaction's committed events, in seq order, to every node that is
  // subscribed to their chats (and, for chat_created, to the nodes of the users who join).
  // Called in commit order. Non-blocking.
  virtual void publish_committed(const std::vector<store::EventRecord>& events) = 0;
  // At-most-once, to the nodes subscribed to any of its chats. Non-blocking.
  virtual void publish_ephemeral(const Ephemeral& event) = 0;
  // To every node with a session of the user (those subscribed to the user). At most once,
  // like ephemerals; a socket that opens meanwhile checks the account itself. Non-blocking.
  virtual void publish_session_end(const SessionEnd& end) = 0;
  // Completes once everything published so far has been handed on (the store's
  // PublishBarrier); never throws, and gives up after a short timeout.
  virtual boost::asio::awaitable<void> flush() = 0;

  // This node's interest in chats and users, counted: the Hub subscribes when a chat or a
  // user gets its first local session and unsubscribes after the last one. `ready` runs once
  // every event committed after `from_seq` (when given; otherwise after the call) reaches
  // the handler. Thread-safe; `ready` may run on any thread, possibly before the call
  // returns. Called from the handler's on_logged with `from_seq` and no `ready` (chats the
  // event just handed over made local), the broker hands on no later event of another chat
  // before those chats' events up to it (for up to a second), so a user socket's seqs grow.
  virtual void subscribe(std::vector<std::int64_t> chat_ids, std::vector<std::int64_t> user_ids,
                         std::optional<std::int64_t> from_seq, std::function<void()> ready) = 0;
  virtual void unsubscribe(std::vector<std::int64_t> chat_ids,
                           std::vector<std::int64_t> user_ids) = 0;
  // Runs `ready` once what the broker reads from the log for the user's first local session
  // (a `subscribe` of the user) has been handed on: a later socket of the user, opening
  // meanwhile, waits for it before it goes live. At once when nothing is being read.
  // NOLINTNEXTLINE(performance-unnecessary-value-param): by value for the overrides to keep
  virtual void when_caught_up(std::int64_t /*user_id*/, std::function<void()> ready) { ready(); }

  // Events from `first_seq` on may be committed without the other nodes having heard them
  // (a COMMIT that got no answer): have every node read them from the log.
  virtual void resync_from(std::int64_t first_seq) = 0;

  // False while the broker cannot carry events (Redis down): /readyz says so.
  [[nodiscard]] virtual bool healthy() const = 0;
};

// One node: publishing is calling the handler.
std::unique_ptr<Broker> make_in_process_broker();

}  // namespace chat::realtime
