// Maps chats and users to this node's live sessions and fans events out to them
// (Tinode's hub, Beast chat-multi's shared_state). A broadcast is serialised once per
// variant (with or without seq, with or without the sender's client_id) and the same
// bytes are queued on every recipient. Queuing is cheap and done under the hub's lock;
// the writes are not: every session a broadcast touched is written once, later, by a
// flush job on an I/O thread, so events that arrive while those jobs wait share each
// socket's write. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "realtime/broker.hpp"
#include "realtime/session.hpp"

namespace boost::json {
class object;
}

namespace chat::store {
class ChatStore;
}

namespace chat::realtime {

// Unread state of one chat for one user socket, kept up to date from the events it gets.
struct UnreadState {
  std::int64_t last_read = 0;
  std::int64_t unread = 0;
  // Raised at every change of `unread`: a store recount asked before a change answers with
  // a count that may not include it, and is asked again rather than applied.
  std::uint64_t version = 0;
  // The event-log seq `unread` was read from the store at: a message event at or below it
  // is in the count already (committed before the read, but heard after its answer).
  std::int64_t as_of = 0;
  // The count is out of date from this seq on (the user read the chat, or hid a message,
  // in the event logged there; 0: it is not) until a store count read at or after it
  // applies. Changes heard meanwhile are not told: told, they moved the old count, and the
  // client showed a count it never had (7 unread, all read, a message came: 8, then 1).
  // They are kept (seq, +1 or -1), and the store's count gets those logged after its read.
  std::int64_t stale_from = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> held_changes;
  // The seq of the chat_created that made the socket hear the chat (0: heard since it
  // was attached). An event of the chat logged before it is from before the user joined:
  // a node catching up from the log for another socket can hear it later, and it is not
  // this socket's.
  std::int64_t joined_at = 0;
};

class Hub final : public BrokerHandler {
 public:
  // `recount(chat_id, user_id, done)` asks the store for an exact unread count and calls
  // `done` with it and the seq it was read at, asynchronously; or with nothing each time
  // the store failed to read it, and then `done` answers whether the count is still
  // wanted (RecountBatcher::Done). `delivered(chat, message, users)` is told whenever a
  // message event is queued on sockets of these users. `post(job)` runs a job on an I/O
  // thread (the flushes).
  using Recount = std::function<void(std::int64_t, std::int64_t,
                                     std::function<bool(std::optional<store::UnreadCount>)>)>;
  using Delivered =
      std::function<void(std::int64_t, std::int64_t, const std::vector<std::int64_t>&)>;
  using Post = std::function<void(std::function<void()>)>;

  Hub(Broker& broker, Recount recount, Delivered delivered, Post post,
      std::size_t max_sockets_per_user);

  // Registers a session for these chats (a user socket: all of the user's chats; a chat
  // socket: its chat; with their unread state, read when the event log stood at
  // `from_seq`), subscribing this node to what it did not hear yet; `ready` runs once the
  // broker delivers their events from `from_seq` on (see Broker::subscribe), possibly at
  // once and under the hub's lock, so it must not call the hub (a socket's only posts).
  // The counts of chats whose events this node heard after `from_seq` but before the
  // session was here are asked of the store again. Returns the user's oldest sessions on
  // this node past the per-user limit, which the caller closes; none with `node_limit`
  // false (the deployment counts the user's sockets).
  std::vector<SessionPtr> attach(const SessionPtr& session,
                                 const std::unordered_map<std::int64_t, UnreadState>& chats,
                                 std::optional<std::int64_t> from_seq, std::function<void()> ready,
                                 bool node_limit = true);
  // The chats whose membership of `user` may have changed by events this node heard after
  // `seq` (their member events; chats made or deleted), or nullopt when the events heard
  // no longer reach back to `seq`. A socket's chats are read before it is attached: such
  // an event heard in between changed none of its subscriptions.
  [[nodiscard]] std::optional<std::vector<std::int64_t>> membership_heard_since(
      std::int64_t user, std::int64_t seq) const;
  // Sets which of these chats (all, with nullopt) a user socket hears from `chats`, the
  // user's chats read again from the store when the log stood at `as_of`: a chat left
  // meanwhile is no longer heard, a chat joined is, with its count sent. A chat whose
  // membership event newer than `as_of` was heard already is left as that event set it.
  void settle(const SessionPtr& session, const std::unordered_map<std::int64_t, UnreadState>& chats,
              std::int64_t as_of, const std::optional<std::vector<std::int64_t>>& which,
              std::function<void()> ready);
  void detach(const Session* session);
  // A message reached `user_id` outside the live fan-out (a resume's replay): told to
  // `delivered` like a message queued live.
  void note_delivered(std::int64_t chat_id, std::int64_t message_id, std::int64_t user_id);
  // After a resume's replay: the session's unread counts of these chats, read from the
  // store (which also mends a count that missed a message committed while the socket was
  // opening) and queued like a live change, so a client back from being away has the counts
  // the replayed events changed.
  void announce_unread(const Session* session, const std::vector<std::int64_t>& chat_ids);
  // Of these chats, those whose unread count the session no longer keeps (it left them, or
  // they were deleted): a count queued for one before the hub knew goes unsent.
  std::vector<std::int64_t> not_counted(const Session* session,
                                        std::vector<std::int64_t> chat_ids) const;
  [[nodiscard]] std::size_t session_count() const;
  // Closes every session (shutdown).
  void close_all(int code, const std::string& reason);

  void on_logged(const store::EventRecord& event) override;
  void on_ephemeral(const Ephemeral& event) override;
  // Closes the local sessions of the user that `end` names (sockets of one chat included).
  void on_session_end(const SessionEnd& end) override;

 private:
  struct Entry {
    SessionPtr session;
    std::unordered_map<std::int64_t, UnreadState> unread;  // of the chats it hears
    std::vector<std::int64_t> chats;                       // the chats it hears
    std::uint64_t order = 0;                               // attach order, for the limit
  };

  // Chats and users that got their first local session or lost their last one: the broker
  // subscriptions to change (apply_locked).
  struct Interest {
    std::vector<std::int64_t> chats_on, chats_off, users_on, users_off;
  };

  void subscribe(Entry& e, std::int64_t chat_id, Interest& interest);
  void add_chat(Entry& e, std::int64_t chat_id, Interest& interest);
  // Returns the user's sockets of that chat (/ws/chat/{id}/), which must close.
  std::vector<SessionPtr> unsubscribe(std::int64_t user_id, std::int64_t chat_id,
                                      Interest& interest);
  // Hands the changes to the broker with the lock still held, so that it hears them in the
  // order they were decided: applied after the unlock, a socket's last "unsubscribe" could
  // overtake a new chat's "subscribe" decided just before it on another thread, and the
  // broker, which counts its subscriptions, would keep hearing the chat for good. The
  // broker's calls only queue work (Broker: `ready` may run at once, so it must not call
  // the hub; the sessions' own only post).
  void apply_locked(Interest& interest, std::optional<std::int64_t> from_seq,
                    std::function<void()> ready);
  // Asks the store for the exact count; sends it when it differs from the session's, or
  // `always`. A count that changed live meanwhile is asked for again, up to `attempts`
  // times; then (or when the store fails) `always` sends the count the session has.
  void recount_for(const SessionPtr& s, std::int64_t chat_id, bool always = false,
                   int attempts = 3);
  // Under the lock: which of these chats had events heard after `seq`.
  std::vector<std::int64_t> heard_since_locked(
      std::int64_t seq, const std::unordered_map<std::int64_t, UnreadState>& chats) const;
  // Under the lock: queues a frame on a session and remembers it for the next flush job.
  void queue_locked(Entry& e, const Frame& frame, std::int64_t seq, std::int64_t state = 0);
  // Under the lock: makes sure a flush job will run for what was queued.
  void schedule_flush_locked();
  void flush_dirty();

  Broker& broker_;
  Recount recount_;
  Delivered delivered_;
  Post post_;
  std::size_t max_sockets_per_user_;
  mutable std::mutex mutex_;
  std::uint64_t next_order_ = 0;
  // Entries are nodes of sessions_ (their addresses never move); the lists point at them.
  std::unordered_map<const Session*, Entry> sessions_;
  std::unordered_map<std::int64_t, std::vector<Entry*>> by_chat_;
  std::unordered_map<std::int64_t, std::vector<Entry*>> by_user_;
  // Sessions with queued frames that the next flush job writes.
  std::vector<SessionPtr> dirty_;
  bool flush_posted_ = false;
  // The chats of the last events heard, in a ring: a socket's counts are read before it is
  // attached, and an event heard in between reached none of its frames or counts.
  struct Heard {
    std::int64_t seq = 0;
    std::int64_t chat_id = 0;
  };
  static constexpr std::size_t kHeard = 1024;
  std::array<Heard, kHeard> heard_{};
  std::size_t heard_count_ = 0;  // ever; the ring holds the last kHeard

  // The membership changes among the events heard, in a ring of their own: rarer than
  // events, they reach back further. A socket's chats are read before it is attached too.
  struct MembershipHeard {
    std::int64_t seq = 0;
    std::int64_t chat_id = 0;
    std::int64_t member = 0;  // whose membership changed; 0: anyone's (a large new chat)
  };
  // Under the lock: notes the membership changes an event makes (`o`: its payload).
  void note_membership_locked(const store::EventRecord& event, const boost::json::object& o,
                              std::int64_t subject);
  // Under the lock: the chats of `user` whose membership events heard are newer than `seq`.
  [[nodiscard]] std::unordered_set<std::int64_t> membership_changed_after_locked(
      std::int64_t user, std::int64_t seq) const;
  static constexpr std::size_t kMembershipHeard = 1024;
  std::array<MembershipHeard, kMembershipHeard> membership_heard_{};
  std::size_t membership_count_ = 0;        // ever
  std::int64_t membership_newest_seq_ = 0;  // the newest seq noted in the ring, ever
};

}  // namespace chat::realtime
