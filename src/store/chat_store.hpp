// Chats, members, messages, pins and the event log. Every write is one transaction that
// also appends the events describing it: the caller passes a function that turns the
// committed rows into events, and the store runs it inside the transaction, so a change
// and its events commit together or not at all. Thread-safe; methods complete on the
// caller's executor; an unreachable database throws store::Unavailable.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "store/chat_records.hpp"

namespace chat::store {

template <class T>
using EventsFor = std::function<std::vector<NewEvent>(const T&)>;

// Told of the events of each transaction right after it commits, in commit order, with
// their seq. Runs on the store's own thread: it must hand the events on and return.
using CommitListener = std::function<void(const std::vector<EventRecord>&)>;

// Awaited after the listener was told of a transaction's events and before the next
// transaction's events may commit (PostgreSQL: several nodes write), so that the broker
// has handed them on in commit order. Completes without throwing.
using PublishBarrier = std::function<boost::asio::awaitable<void>()>;

struct NewChat {
  ChatType type = ChatType::group;
  std::string name;
  std::vector<std::pair<std::int64_t, Role>> members;  // the creator included
  Micros now = 0;
};

struct CreatedChat {
  std::int64_t chat_id = 0;
  bool created = false;  // false: the private chat of this pair already existed
  std::vector<std::int64_t> member_ids;
};

// A send's created_at is the later of its clock (`now`, read before the write reached the
// store) and a microsecond past its chat's previous message's, so that a chat's times rise
// with its ids; but never more than this past its own clock. A lead that large comes only
// from a clock stepped back after running fast: the next message is then stamped this far
// past its clock, before the messages stamped while the clock ran fast instead of after
// them, which would have kept the chat's times (and its rank in chat lists) ahead of the
// clock for as long as it ran fast, and put its messages' events out of reach of the hour
// before a message's time from which they are looked up (relog_text in both stores).
// PostgreSQL's send function has the number written out (migration 16).
inline constexpr Micros kMaxSendTimeLead = 60'000'000;

struct NewMessage {
  std::int64_t chat_id = 0;
  std::int64_t sender_id = 0;
  std::string text;
  std::optional<std::string> client_id;
  std::optional<std::int64_t> forwarded_from;
  Micros now = 0;
  // A forward: the message it copies. Stored only while that message is live, with its
  // text as it is then (a deletion or an edit committed first is seen).
  std::optional<std::int64_t> copy_of = std::nullopt;
};

struct SentMessage {
  MessageRecord message;
  bool created = false;  // false: an earlier message with this client_id was returned
  // A forward whose original was deleted first: nothing was stored (`message` is empty).
  bool original_gone = false;
  Watermarks marks;  // of the chat, read in the same transaction (for the status)
  // The send moved its sender's read watermark past messages of others (a reply to what
  // they had not marked read): the other members learn it as a `read` event.
  bool read_moved = false;
};

// The standing in a chat that a permission was checked against. A write given one makes
// its change only if, inside its own transaction, the user is still a member of the chat
// with this role; otherwise it changes nothing and answers as refused (nullopt, false), and
// the service checks again against what changed. So a right cannot be used once it is gone:
// a demotion, a removal or a departure committed between the check and the write wins.
struct Standing {
  std::int64_t chat_id = 0;
  std::int64_t user_id = 0;
  std::optional<Role> role;  // nullopt: membership alone (the rule does not look at the role)
};

// A removal of another member, as its caller checked it: made only while the caller still
// stands so and the member removed still has `target_role` (the rule depends on both).
struct RemovalBy {
  Standing actor;
  Role target_role = Role::member;
};

// Whether a removal checked as `by` still holds among `members` (read by the removal's
// transaction): the remover still stands so, and `user_id` still has the role checked.
bool still_removable(const std::vector<MemberRecord>& members, std::int64_t user_id,
                     const RemovalBy& by);

// A role change as its caller checked it: made only while the member still has `from`
// and the one changing it still has `actor_role`, so it cannot land on a chat that changed
// under the caller's checks (an owner who has left, a member who has become owner).
struct RoleChange {
  std::int64_t chat_id = 0;
  std::int64_t user_id = 0;
  Role from = Role::member;
  Role to = Role::member;
  std::int64_t actor_id = 0;
  Role actor_role = Role::owner;
};

struct MemberChange {
  std::int64_t chat_id = 0;
  std::int64_t user_id = 0;
  Role role = Role::member;
  std::optional<std::int64_t> promoted_user_id;  // a new owner, when the owner left
  // add_member: the chat as the new member sees it, read in the addition's transaction
  // (their watermark, the messages they hid before if they are back), for their event.
  std::optional<ChatSummary> seen_by_member;
};

// Who takes over when a member leaves: given the leaving member and those who remain
// (oldest first), the new owner, if any. Run inside the removal's transaction.
using ChooseOwner = std::function<std::optional<std::int64_t>(
    const MemberRecord& leaving, const std::vector<MemberRecord>& remaining)>;

struct Departure {
  MemberChange change;
  bool chat_deleted = false;  // the last member left: the chat is gone
};

struct HistoryPage {
  std::vector<MessageRecord> messages;  // in the order asked for
  bool has_more = false;
  MemberRecord viewer;  // the reader's membership, and the chat's watermarks, as the
  Watermarks marks;     // messages were read (one snapshot)
  // Newest-first pages: the newest message the reader can see below the page's oldest, 0
  // when there is none (the page then joins what the reader already had when this is at
  // or below their delivered watermark).
  std::int64_t visible_below = 0;
};

struct Replay {
  std::vector<EventRecord> events;
  bool has_more = false;
  bool resync_required = false;  // `since` is older than the log keeps
  std::int64_t last_seq = 0;     // where the reader moves to: the last event sent, or the
                                 // newest seq (even below a `since` ahead of the log)
  // The reader's own view of the chats whose chat objects `events` carry (replay_views).
  std::vector<MemberView> reader_views;
};

// How many events the next read of a replay (a socket's, or GET /api/events/'s) asks for
// to hold about `room` bytes, judged from the `bytes` of the `events` read so far (at
// least one); between 1 and `most`. Events range from a short message to a chat object
// naming thousands of members.
inline int replay_read_size(std::size_t bytes, std::size_t events, std::size_t room,
                            std::size_t most) {
  const std::size_t each = std::max<std::size_t>(1, bytes / std::max<std::size_t>(1, events));
  return static_cast<int>(std::clamp<std::size_t>(room / each, 1, std::max<std::size_t>(1, most)));
}

class ChatStore {
 public:
  virtual ~ChatStore() = default;

  // Set once, before any write.
  virtual void set_commit_listener(CommitListener listener) = 0;
  // Set once, before any write. A store with a single writer needs none and ignores it.
  // NOLINTNEXTLINE(performance-unnecessary-value-param): a sink, moved from by overrides
  virtual void set_publish_barrier(PublishBarrier /*barrier*/) {}
  // Told the first seq of a transaction whose COMMIT got no answer (the connection broke):
  // its events may be committed without anyone having been told. Set once, before any write.
  // NOLINTNEXTLINE(performance-unnecessary-value-param): a sink, moved from by overrides
  virtual void set_uncertain_commit_listener(std::function<void(std::int64_t)> /*listener*/) {}

  // --- reads ---------------------------------------------------------------------------
  virtual boost::asio::awaitable<std::optional<ChatRecord>> find_chat(std::int64_t chat_id) = 0;
  virtual boost::asio::awaitable<std::optional<MemberRecord>> find_member(std::int64_t chat_id,
                                                                          std::int64_t user_id) = 0;
  virtual boost::asio::awaitable<std::vector<MemberRecord>> members(std::int64_t chat_id) = 0;
  // The private chat of these two users, when they have one.
  virtual boost::asio::awaitable<std::optional<std::int64_t>> find_private_chat(std::int64_t a,
                                                                                std::int64_t b) = 0;
  virtual boost::asio::awaitable<std::vector<std::int64_t>> chat_ids_of(std::int64_t user_id) = 0;
  virtual boost::asio::awaitable<std::vector<ChatSummary>> summaries(std::int64_t viewer_id) = 0;
  // The user's chats with their read watermarks and unread counts, and the newest seq of
  // the event log, in one snapshot: what a socket needs to open (no members, messages or
  // pins, which summaries() also reads).
  // `only_chat`: that chat's alone (nothing when the user is not in it), for a socket of
  // one chat.
  virtual boost::asio::awaitable<ReadStates> read_states(std::int64_t user_id,
                                                         std::optional<std::int64_t> only_chat) = 0;
  virtual boost::asio::awaitable<std::optional<ChatSummary>> summary(std::int64_t chat_id,
                                                                     std::int64_t viewer_id) = 0;
  // The viewer's own fields of each of these chats they are a member of (the others left
  // out), in the order asked, in one snapshot. Neither the chats' rows nor their members are read:
  // a replay carrying a rename of a 10,000-member group reads two watermarks, not 10,000 members.
  virtual boost::asio::awaitable<std::vector<MemberView>> member_views(
      std::int64_t viewer_id, std::vector<std::int64_t> chat_ids) = 0;
  // Each chat's count, 0 for a chat the viewer is not a member of. One read for them all:
  // a socket's resume recounts every chat its replay touched.
  virtual boost::asio::awaitable<UnreadCounts> unread_counts(
      std::int64_t viewer_id, std::vector<std::int64_t> chat_ids) = 0;
  // One chat's: unread_counts() of it alone.
  boost::asio::awaitable<UnreadCount> unread_count(std::int64_t chat_id, std::int64_t viewer_id);
  virtual boost::asio::awaitable<Watermarks> watermarks(std::int64_t chat_id) = 0;

  // Messages not hidden for the viewer. Without `after`: newest first, older than
  // `before` when given. With `after`: oldest first, newer than `after`. nullopt when the
  // viewer is not a member (or the chat is gone): a page is one read, membership included.
  virtual boost::asio::awaitable<std::optional<HistoryPage>> history(
      std::int64_t chat_id, std::int64_t viewer_id, std::optional<std::int64_t> before,
      std::optional<std::int64_t> after, int limit) = 0;
  virtual boost::asio::awaitable<std::optional<MessageRecord>> find_message(std::int64_t id) = 0;
  // The message `sender_id` stored in the chat with `client_id`, if any (what a repeated
  // client_id answers with; send_message() finds it by itself).
  virtual boost::asio::awaitable<std::optional<MessageRecord>> find_sent(std::int64_t chat_id,
                                                                         std::int64_t sender_id,
                                                                         std::string client_id) = 0;
  // True when the user deleted the message for themself (?for=me).
  virtual boost::asio::awaitable<bool> is_hidden(std::int64_t user_id, std::int64_t chat_id,
                                                 std::int64_t message_id) = 0;
  // Full-text search in the viewer's chats; `match` is an FTS expression built by the
  // service (see chat/search_query.hpp). Newest first; never deleted or hidden messages.
  virtual boost::asio::awaitable<std::vector<MessageRecord>> search(
      std::int64_t viewer_id, std::vector<std::string> terms, std::optional<std::int64_t> chat_id,
      int limit) = 0;

  virtual boost::asio::awaitable<std::vector<PinRecord>> pins(std::int64_t chat_id) = 0;
  virtual boost::asio::awaitable<std::optional<PinRecord>> find_pin(std::int64_t pin_id) = 0;

  // Events visible to the user after `since`, oldest first.
  virtual boost::asio::awaitable<Replay> replay(std::int64_t user_id, std::int64_t since,
                                                int limit) = 0;
  // What a node's live fan-out may have missed (a broker outage, a subscription that was
  // just made): events after `after_seq` of these chats, of the chats these users are
  // members of, and those meant for these users; oldest first. Chat events' copies of
  // messages, logged without their text, come back up to date (logged_text.hpp).
  virtual boost::asio::awaitable<std::vector<EventRecord>> events_since(
      std::vector<std::int64_t> chat_ids, std::vector<std::int64_t> user_ids,
      std::int64_t after_seq, int limit) = 0;
  // The seq of the newest committed event (0 when none).
  virtual boost::asio::awaitable<std::int64_t> newest_seq() = 0;

  // --- writes --------------------------------------------------------------------------
  virtual boost::asio::awaitable<CreatedChat> create_chat(NewChat chat,
                                                          EventsFor<CreatedChat> events) = 0;
  // The writes that take a Standing (or RemovalBy) make no change when it no longer holds.
  virtual boost::asio::awaitable<std::optional<ChatRecord>> rename_chat(
      Standing by, std::string name, EventsFor<RenamedChat> events) = 0;
  // Deletes the chat with its members, messages and pins; the events (one per former
  // member, the chat being gone) are written first. false when it was gone.
  virtual boost::asio::awaitable<bool> delete_chat(Standing by,
                                                   EventsFor<std::vector<MemberRecord>> events) = 0;

  // nullopt when the user is already a member (or the chat is gone).
  virtual boost::asio::awaitable<std::optional<MemberChange>> add_member(
      Standing by, std::int64_t user_id, Role role, Micros now, EventsFor<MemberChange> events) = 0;
  // nullopt when the member or the actor no longer holds the role the change expects (or
  // the chat is gone).
  virtual boost::asio::awaitable<std::optional<MemberChange>> set_role(
      RoleChange change, EventsFor<MemberChange> events) = 0;
  // Removes the member in one transaction with what follows from it: `choose_owner`
  // names a new owner, and when nobody remains the chat is deleted. `by`: nullopt when the
  // member leaves.
  virtual boost::asio::awaitable<std::optional<Departure>> remove_member(
      std::int64_t chat_id, std::int64_t user_id, std::optional<RemovalBy> by,
      ChooseOwner choose_owner, EventsFor<Departure> events) = 0;

  // Stores the message (or returns the earlier one with the same sender, chat and
  // client_id), moves the chat's activity and the sender's watermarks to it. nullopt when
  // the chat is gone or the sender is not a member.
  virtual boost::asio::awaitable<std::optional<SentMessage>> send_message(
      NewMessage message, EventsFor<SentMessage> events) = 0;
  // nullopt when the message is deleted (or gone).
  virtual boost::asio::awaitable<std::optional<MessageRecord>> edit_message(
      Standing by, std::int64_t id, std::string text, Micros now,
      EventsFor<MessageRecord> events) = 0;
  // nullopt when the message was deleted already (or is gone). `by`: nullopt for staff.
  // Its pin goes with it, in the same transaction, logged with `unpinned` after `events`:
  // a deleted message cannot be pinned, so it does not stay pinned either.
  virtual boost::asio::awaitable<std::optional<MessageRecord>> delete_message(
      std::optional<Standing> by, std::int64_t id, EventsFor<MessageRecord> events,
      EventsFor<PinRecord> unpinned) = 0;
  // false when it was hidden already, or `user_id` is no longer a member of its chat.
  virtual boost::asio::awaitable<bool> hide_message(std::int64_t user_id,
                                                    const MessageRecord& message,
                                                    EventsFor<MessageRecord> events) = 0;
  // Moves a watermark up to `value` (clamped to the chat's newest message).
  virtual boost::asio::awaitable<WatermarkChange> mark_read(std::int64_t chat_id,
                                                            std::int64_t user_id,
                                                            std::int64_t value,
                                                            EventsFor<WatermarkChange> events) = 0;
  // Moves members' delivered watermarks up, each clamped to its chat's newest message, in
  // one transaction: one batch per chat, in chat order, with `events` asked of each batch
  // in which a watermark moved.
  virtual boost::asio::awaitable<std::vector<DeliveredBatch>> mark_delivered_many(
      DeliveredNotes notes, EventsFor<DeliveredBatch> events) = 0;

  // The pin of this message, created when new (`second` true); nullopt when the message is
  // deleted (or gone), however recently: a pin cannot follow the message's deletion.
  // The pin is `by.user_id`'s, in `by.chat_id`.
  virtual boost::asio::awaitable<std::optional<std::pair<PinRecord, bool>>> pin(
      Standing by, std::int64_t message_id, Micros now, EventsFor<PinRecord> events) = 0;
  // false when there is no such pin in `by.chat_id` (a concurrent unpin won).
  virtual boost::asio::awaitable<bool> unpin(Standing by, std::int64_t pin_id,
                                             EventsFor<PinRecord> events) = 0;

  // Drops events older than `before`; replays from before the cut answer resync_required.
  virtual boost::asio::awaitable<std::int64_t> prune_events(Micros before) = 0;
  // A store may remove a deleted chat's rows after the chat has gone (SQLite does, a slice
  // per write, within delete_chat and remove_member): this finishes the removals a stop
  // cut short, and answers how many chats it finished.
  virtual boost::asio::awaitable<std::int64_t> finish_chat_deletions() = 0;
};

}  // namespace chat::store
