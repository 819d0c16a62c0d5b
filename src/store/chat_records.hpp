// The rows of chats, members, messages, pins and events as the services see them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/time.hpp"

namespace chat::store {

enum class ChatType { private_chat, group };
enum class Role { owner, admin, member };

const char* chat_type_name(ChatType t);
const char* role_name(Role r);
std::optional<Role> parse_role(std::string_view s);

struct ChatRecord {
  std::int64_t id = 0;
  ChatType type = ChatType::group;
  std::string name;
  Micros created_at = 0;
  std::int64_t last_message_id = 0;
  Micros last_activity_at = 0;
};

struct MemberRecord {
  std::int64_t user_id = 0;
  std::string username;
  Role role = Role::member;
  Micros joined_at = 0;
  std::int64_t last_read_message_id = 0;
  std::int64_t last_delivered_message_id = 0;
};

struct MessageRecord {
  std::int64_t id = 0;
  std::int64_t chat_id = 0;
  std::int64_t sender_id = 0;  // 0 when the sender's account was deleted
  std::string sender_username;
  std::string text;
  Micros created_at = 0;
  std::optional<Micros> edited_at;
  bool is_deleted = false;
  std::optional<std::int64_t> forwarded_from;
  std::optional<std::string> client_id;
};

struct PinRecord {
  std::int64_t id = 0;
  std::int64_t chat_id = 0;
  std::int64_t message_id = 0;
  std::int64_t pinned_by = 0;
  Micros pinned_at = 0;
};

// One entry of the event log. `user_id` set: only that user sees it (delete for me, or a
// member told of their own removal); unset: every member of the chat at replay time.
// `message_id`: the message the event is about, which members who hid it do not replay
// (nor get live, for the events skips_hiders names).
// For a `message` or `edit` event the payload carries that message's text in its top-level
// "text", and the store keeps it equal to the message's text when the message is edited
// or deleted, so the log never replays words the message no longer has.
struct NewEvent {
  std::int64_t chat_id = 0;
  std::optional<std::int64_t> user_id;
  std::string type;
  std::string payload;  // the event's JSON, as sockets carry it (without seq)
  std::optional<std::int64_t> message_id = std::nullopt;
};

// The chat-wide events about a message that the members who hid it for themselves do not
// get, live as in their replays (which tell from hidden_messages): an edit, deletion, pin
// or unpin would show them the message again, or take it off their count once more. The
// store reads who hid `message_id` in the write's own transaction, after every write
// logged before it, so a hide committed just before the event is never missed; and again
// for the events a node reads from the log (EventRecord::hidden_from).
inline bool skips_hiders(std::string_view type, const std::optional<std::int64_t>& user_id) {
  return !user_id && (type == "edit" || type == "delete" || type == "pin" || type == "unpin");
}

struct EventRecord {
  std::int64_t seq = 0;
  std::int64_t chat_id = 0;
  std::optional<std::int64_t> user_id;
  std::string type;
  std::string payload;
  Micros created_at = 0;
  // The members who hid the message of an event that skips them (skips_hiders): filled for
  // delivery, live and read from the log (events_since).
  std::vector<std::int64_t> hidden_from = {};
};

// What a user socket keeps of each of the user's chats, and where the event log stood
// when they were read (one snapshot).
struct ReadState {
  std::int64_t chat_id = 0;
  std::int64_t last_read_message_id = 0;
  std::int64_t unread_count = 0;
};
struct ReadStates {
  std::int64_t seq = 0;
  std::vector<ReadState> chats;
};

// A member's unread count of one chat and the newest seq of the event log, in one
// snapshot: every event at or below `seq` is in the count, none above it.
struct UnreadCount {
  std::int64_t count = 0;
  std::int64_t seq = 0;
};
// A member's unread counts of several chats (`counts[i]` of the i-th chat asked about) and
// the newest seq of the event log, in one snapshot.
struct UnreadCounts {
  std::vector<std::int64_t> counts;
  std::int64_t seq = 0;
};

// A member's own view of a chat: what GET /api/chats/ shows besides the chat row.
struct ChatSummary {
  ChatRecord chat;
  std::vector<MemberRecord> members;
  std::optional<MessageRecord> last_message;  // newest not hidden for the viewer
  std::int64_t unread_count = 0;
  std::int64_t last_read_message_id = 0;
  std::vector<std::int64_t> pinned_message_ids;
};

// A renamed chat as its event shows it, read in the rename's transaction: the chat as a
// member who hid nothing sees it (its newest message, every pin; the per-member counts
// left at 0, each recipient's own are filled in where the event is sent), and, for the
// members who hid that newest message or a pinned one, what each of them sees instead.
struct HiderView {
  std::int64_t user_id = 0;
  std::optional<MessageRecord> last_message;  // the newest they did not hide
  std::vector<std::int64_t> pinned_message_ids;
};
struct RenamedChat {
  ChatSummary shared;
  std::vector<HiderView> seen_by_hiders;  // by user id
};

// The lowest read and delivered watermarks among a chat's members, two of each, so the
// status of any sender's message (the minimum over the *other* members) needs no more.
struct Watermarks {
  struct Entry {
    std::int64_t user_id = 0;
    std::int64_t value = 0;
  };
  std::vector<Entry> lowest_read;       // at most two, ascending
  std::vector<Entry> lowest_delivered;  // at most two, ascending
};

// A member's own fields of a chat object (ChatSummary's, without the chat row and its
// members), with the chat's watermarks for its last message's status: what a replay fills
// into the chat objects it carries (replay_views).
struct MemberView {
  std::int64_t chat_id = 0;
  std::optional<MessageRecord> last_message;  // newest not hidden for the viewer
  std::int64_t unread_count = 0;
  std::int64_t last_read_message_id = 0;
  std::vector<std::int64_t> pinned_message_ids;
  Watermarks marks;
};

// What makes a private chat unique: its pair of users, in either order ("2:7").
struct WatermarkChange {
  std::int64_t chat_id = 0;
  std::int64_t user_id = 0;
  std::int64_t value = 0;  // after the call (never lowered)
  bool changed = false;
};

// Chats up to this size log a `delivered` event per member whose watermark moved; larger
// ones only on a rise of the chat's lowest watermark (chats::delivered_events). The stores
// move a larger chat's watermarks one batch at a time, so that no rise goes unseen by both
// of two batches that together made it.
constexpr std::int64_t kDeliveredEachMemberUpTo = 32;

// Chat -> (member, the newest message id delivered to them).
using DeliveredNotes = std::map<std::int64_t, std::vector<std::pair<std::int64_t, std::int64_t>>>;

// Delivered watermarks of several members of one chat, moved in one transaction.
struct DeliveredBatch {
  std::int64_t chat_id = 0;
  std::vector<WatermarkChange> changes;  // only the members whose watermark moved, by user
  std::int64_t member_count = 0;
  std::int64_t lowest_before = 0;  // the chat's lowest delivered watermark
  std::int64_t lowest_after = 0;
};

inline std::string private_chat_key(std::int64_t a, std::int64_t b) {
  return std::to_string(std::min(a, b)) + ":" + std::to_string(std::max(a, b));
}

}  // namespace chat::store
