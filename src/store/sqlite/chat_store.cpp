#include "store/sqlite/chat_store.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <optional>
#include <queue>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/unicode.hpp"
#include "store/logged_text.hpp"
#include "store/sql_columns.hpp"
#include "store/sqlite/database.hpp"
#include "store/sqlite/rows.hpp"

namespace chat::store::sqlite {
namespace {

// ---- SQL -------------------------------------------------------------------------------

// A chat whose rows are being removed after its deletion (kRetireChat) is not found, nor
// are its messages (kMessageById, kLiveText).
constexpr const char* kChatById =
    "SELECT " CHAT_SQL_CHAT_COLUMNS " FROM chats c WHERE c.id = ?1 AND c.purging = 0";
constexpr const char* kMember = "SELECT " CHAT_SQL_MEMBER_COLUMNS
                                " FROM chat_members m JOIN users u ON u.id = m.user_id "
                                "WHERE m.chat_id = ?1 AND m.user_id = ?2";
// Members in the order they joined (the oldest first), which is also succession order.
constexpr const char* kMembers = "SELECT " CHAT_SQL_MEMBER_COLUMNS
                                 " FROM chat_members m JOIN users u ON u.id = m.user_id "
                                 "WHERE m.chat_id = ?1 ORDER BY m.joined_at, m.user_id";
constexpr const char* kChatIdsOfUser = "SELECT chat_id FROM chat_members WHERE user_id = ?1";
constexpr const char* kMyChatsByActivity =
    "SELECT c.id FROM chat_members m JOIN chats c ON c.id = m.chat_id WHERE m.user_id = ?1 "
    "ORDER BY c.last_activity_at DESC, c.id DESC";

// The message `message` of chat `chat` is not hidden for `viewer` (SQL expressions).
#define NOT_HIDDEN_FOR(viewer, chat, message)                                                      \
  "NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = " viewer " AND h.chat_id = " chat \
  " AND h.message_id = " message ")"
#define NOT_HIDDEN(viewer) NOT_HIDDEN_FOR(viewer, "m.chat_id", "m.id")

constexpr const char* kMessageById = "SELECT " CHAT_SQL_MESSAGE_COLUMNS
                                     " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
                                     "WHERE m.id = ?1 AND " CHAT_SQL_NOT_PURGING("m.chat_id");
constexpr const char* kLastVisibleMessage =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.chat_id = ?1 AND " NOT_HIDDEN("?2") " ORDER BY m.id DESC LIMIT 1";
// A page of history reads only the messages table: the viewer's hidden ids in the page's
// range come from one range read merged in order (see visible_rows), and each sender's
// name is read once per page. Probing hidden_messages and users for every row (as the
// single-message reads above do) cost a third of a page's reading.
constexpr const char* kPageNewestFirst = "SELECT " CHAT_SQL_MESSAGE_COLUMNS_NAMED(
    "''") " FROM messages m WHERE m.chat_id = ?1 AND m.id < ?2 ORDER BY m.id DESC";
constexpr const char* kPageOldestFirst = "SELECT " CHAT_SQL_MESSAGE_COLUMNS_NAMED(
    "''") " FROM messages m WHERE m.chat_id = ?1 AND m.id > ?2 AND m.id < ?3 ORDER BY m.id";
constexpr const char* kHiddenNewestFirst =
    "SELECT message_id FROM hidden_messages WHERE user_id = ?1 AND chat_id = ?2 "
    "AND message_id < ?3 ORDER BY message_id DESC";
constexpr const char* kHiddenOldestFirst =
    "SELECT message_id FROM hidden_messages WHERE user_id = ?1 AND chat_id = ?2 "
    "AND message_id > ?3 AND message_id < ?4 ORDER BY message_id";
constexpr const char* kUsernameById = "SELECT username FROM users WHERE id = ?1";
// Newest first by the index's own rowid (= m.id): FTS5 then walks its matches downwards and
// the LIMIT stops it, where ORDER BY m.id collected and sorted every match in the file.
#define CHAT_SQL_SEARCH(NEWER_THAN)                                         \
  "SELECT " CHAT_SQL_MESSAGE_COLUMNS                                        \
  " FROM messages_fts f JOIN messages m ON m.id = f.rowid "                 \
  "LEFT JOIN users u ON u.id = m.sender_id "                                \
  "WHERE messages_fts MATCH ?1 " NEWER_THAN                                 \
  " AND m.is_deleted = 0 "                                                  \
  "AND m.chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = ?2) " \
  "AND (?3 = 0 OR m.chat_id = ?3) AND " NOT_HIDDEN("?2") " ORDER BY f.rowid DESC LIMIT ?4"
constexpr const char* kSearch = CHAT_SQL_SEARCH("");
// Only ids above ?5: what the search of the caller's other chats left to beat.
constexpr const char* kSearchNewerThan = CHAT_SQL_SEARCH("AND f.rowid > ?5");
#undef CHAT_SQL_SEARCH
// A search names at most this many chats in each index query (search below), after
// walking everyone's matches for a moment when the caller is in more.
constexpr std::size_t kMaxSearchChatsNamed = 64;
constexpr const char* kMyChatIds = "SELECT chat_id FROM chat_members WHERE user_id = ?1";
constexpr const char* kMessageByClientId =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.chat_id = ?1 AND m.sender_id = ?2 AND m.client_id = ?3";

// UNREAD_COUNT, over chats c joined with the member's row m: messages after the watermark
// (by ordinal), less the deleted ones and the ones hidden for the member. The member's own
// messages are never after their watermark: sending moves it. Each part is an index lookup
// or a range over deleted/hidden rows only.
#define UNREAD_COUNT                                                                             \
  "c.message_count"                                                                              \
  " - COALESCE((SELECT x.ordinal FROM messages x WHERE x.chat_id = c.id AND "                    \
  "   x.id <= m.last_read_message_id ORDER BY x.id DESC LIMIT 1), 0)"                            \
  " - (SELECT count(*) FROM messages d WHERE d.chat_id = c.id AND d.is_deleted = 1 AND "         \
  "   d.id > m.last_read_message_id)"                                                            \
  " - (SELECT count(*) FROM hidden_messages h JOIN messages x ON x.id = h.message_id WHERE "     \
  "   h.user_id = m.user_id AND h.chat_id = c.id AND h.message_id > m.last_read_message_id AND " \
  "   x.is_deleted = 0)"
constexpr const char* kUnread =
    "SELECT " UNREAD_COUNT
    " FROM chats c JOIN chat_members m ON m.chat_id = c.id WHERE c.id = ?1 AND m.user_id = ?2";
// Every chat of a user with its read watermark and unread count (kUnread for each).
#define READ_STATES                                    \
  "SELECT c.id, m.last_read_message_id, " UNREAD_COUNT \
  " FROM chats c JOIN chat_members m ON m.chat_id = c.id WHERE m.user_id = ?1"
constexpr const char* kReadStates = READ_STATES;
constexpr const char* kReadStateOfChat = READ_STATES " AND c.id = ?2";
#undef READ_STATES
#undef UNREAD_COUNT
constexpr const char* kLowestRead =
    "SELECT user_id, last_read_message_id FROM chat_members WHERE chat_id = ?1 "
    "ORDER BY last_read_message_id LIMIT 2";
constexpr const char* kLowestDelivered =
    "SELECT user_id, last_delivered_message_id FROM chat_members WHERE chat_id = ?1 "
    "ORDER BY last_delivered_message_id LIMIT 2";

// The pinned messages a member sees: not those they hid for themselves.
constexpr const char* kPinnedForViewer =
    "SELECT p.message_id FROM pins p WHERE p.chat_id = ?1 AND " NOT_HIDDEN_FOR(
        "?2", "p.chat_id", "p.message_id") " ORDER BY p.id";
constexpr const char* kPinsOfChat =
    "SELECT id, chat_id, message_id, pinned_by, pinned_at FROM pins WHERE chat_id = ?1 ORDER BY id";
constexpr const char* kPinById =
    "SELECT id, chat_id, message_id, pinned_by, pinned_at FROM pins WHERE id = ?1";
constexpr const char* kPinByMessage =
    "SELECT id, chat_id, message_id, pinned_by, pinned_at FROM pins WHERE chat_id = ?1 AND "
    "message_id = ?2";
constexpr const char* kInsertPin =
    "INSERT OR IGNORE INTO pins(chat_id, message_id, pinned_by, pinned_at) VALUES (?1, ?2, ?3, ?4)";
constexpr const char* kDeletePin = "DELETE FROM pins WHERE id = ?1";
constexpr const char* kUnpinMessage =
    "DELETE FROM pins WHERE chat_id = ?1 AND message_id = ?2 "
    "RETURNING id, chat_id, message_id, pinned_by, pinned_at";
constexpr const char* kLiveMessage =
    "SELECT 1 FROM messages WHERE id = ?1 AND chat_id = ?2 AND is_deleted = 0";

// A replay walks the user's own chats through events(chat_id, seq), and the events meant
// for them through events(user_id, seq): its cost follows what they missed, not how busy
// the rest of the server was. Each part is cut at the page size; the caller merges them.
constexpr const char* kCountUserChats = "SELECT count(*) FROM chat_members WHERE user_id = ?1";
// Users in at most this many chats are replayed on the calling thread (see replay()).
constexpr std::int64_t kInlineReplayChats = 64;
constexpr const char* kReplayChats =
    "SELECT chat_id, joined_seq FROM chat_members WHERE user_id = ?1";
// The seqs of a chat's events for member ?4, but for the message and edit events of
// messages they hid for themselves: gone for them everywhere, the log's replay included.
// A replay picks its page by seq first and reads only the page's events (kEventBySeq).
constexpr const char* kReplayChatSeqs =
    "SELECT e.seq FROM events e "
    "WHERE e.chat_id = ?1 AND e.seq > ?2 AND e.user_id IS NULL AND (e.message_id IS NULL "
    "OR " NOT_HIDDEN_FOR("?4", "e.chat_id", "e.message_id") ") ORDER BY e.seq LIMIT ?3";
// The events meant for the user alone: those of the chats they are in, from when they
// joined, and the event that ended each chat they are no longer in (what they saw of a
// chat they left is not replayed; a client loads a chat it is told of through REST).
constexpr const char* kReplayUserSeqs =
    "SELECT e.seq FROM events e WHERE e.user_id = ?1 AND e.seq > ?2 AND (e.type IN "
    "('member_removed', 'chat_deleted') OR EXISTS (SELECT 1 FROM chat_members m WHERE "
    "m.chat_id = e.chat_id AND m.user_id = ?1 AND m.joined_seq < e.seq)) ORDER BY e.seq LIMIT ?3";
constexpr const char* kEventBySeq =
    "SELECT seq, chat_id, user_id, type, payload, created_at FROM events WHERE seq = ?1";
constexpr const char* kEventsSince =
    "SELECT e.seq, e.chat_id, e.user_id, e.type, e.payload, e.created_at FROM events e "
    "WHERE e.seq > ?1 AND (e.chat_id IN (SELECT value FROM json_each(?2)) OR e.user_id IN "
    "(SELECT value FROM json_each(?3)) OR e.chat_id IN (SELECT chat_id FROM chat_members WHERE "
    "user_id IN (SELECT value FROM json_each(?3)))) ORDER BY e.seq LIMIT ?4";
constexpr const char* kHidersOfEvents =
    CHAT_SQL_HIDERS_OF_EVENTS("(SELECT value FROM json_each(?1))");
// The newest seq ever taken: the log's newest event, or, once pruning emptied the log, the
// last seq it pruned.
constexpr const char* kMaxSeq =
    "SELECT max(COALESCE((SELECT max(seq) FROM events), 0), "
    "COALESCE((SELECT pruned_through FROM event_log_state WHERE id = 1), 0))";
constexpr const char* kPrunedThrough = "SELECT pruned_through FROM event_log_state WHERE id = 1";
constexpr const char* kInsertEvent =
    "INSERT INTO events(chat_id, user_id, type, payload, created_at, message_id) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
// A message's logged events (NewEvent::message_id) are found among its chat's events from
// its time on, through events(chat_id, seq), starting at the first event logged an hour
// before it (a margin for clocks): no index of their own, which every send would write
// (5-10 % of SQLite's ingest), while this scan runs only for an edit or a deletion and
// reads the chat's events since the message.
constexpr const char* kLoggedForMessage =
    "SELECT seq, payload, type FROM events WHERE chat_id = ?1 AND message_id = ?2 AND seq >= "
    "COALESCE((SELECT seq FROM events WHERE created_at >= ?3 ORDER BY created_at LIMIT 1), "
    "(SELECT COALESCE(max(seq), 0) + 1 FROM events))";
constexpr const char* kRelogPayload = "UPDATE events SET payload = ?2 WHERE seq = ?1";
// The messages whose copies chat events carry (CopiesInLog); ?1 a JSON array of ids.
constexpr const char* kCopiedMessages = "SELECT " CHAT_SQL_MESSAGE_COLUMNS
                                        " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
                                        "WHERE m.id IN (SELECT value FROM json_each(?1))";
constexpr const char* kDropLoggedEvent = "DELETE FROM events WHERE seq = ?1";
constexpr const char* kPruneEventsUpTo =
    "SELECT COALESCE(max(seq), 0) FROM events WHERE created_at < ?1";
constexpr const char* kDeleteEventsUpTo = "DELETE FROM events WHERE seq <= ?1";
constexpr const char* kOldestEvent = "SELECT COALESCE(min(seq), 0) FROM events";
// Pruning deletes this many seqs per write: a write holds the writer, and every send queued
// behind it, for one slice only, and its undo copies (kept in memory when its group is
// redone in savepoints) stay small.
constexpr std::int64_t kPruneSlice = 2000;
constexpr const char* kSetPrunedThrough =
    "UPDATE event_log_state SET pruned_through = max(pruned_through, ?1) WHERE id = 1";

constexpr const char* kFindPrivate = "SELECT id FROM chats WHERE private_key = ?1";
constexpr const char* kInsertChat =
    "INSERT INTO chats(type, name, private_key, created_at, last_activity_at) VALUES (?1, ?2, ?3, "
    "?4, ?4)";
constexpr const char* kInsertMember =
    "INSERT INTO chat_members(chat_id, user_id, role, joined_at, joined_seq, last_read_message_id, "
    "last_delivered_message_id) SELECT ?1, ?2, ?3, ?4, (SELECT COALESCE(max(seq), 0) FROM events), "
    "c.last_message_id, c.last_message_id FROM chats c WHERE c.id = ?1";
constexpr const char* kRenameChat = "UPDATE chats SET name = ?2 WHERE id = ?1";
// A deleted chat leaves at once: its members, pins and private pair go in the deletion's
// transaction and the row is marked `purging` (retire_chat). Its messages with their index
// entries, then its events, go afterwards a slice per write, and its hides with the chat
// row in the last (purge_slice): every write waits for the one writer, and a chat of
// 100,000 messages deleted in one transaction held everyone's sends for up to a second.
constexpr const char* kRetireChat =
    "UPDATE chats SET purging = 1, private_key = NULL WHERE id = ?1";
constexpr const char* kDeleteChatMembers = "DELETE FROM chat_members WHERE chat_id = ?1";
constexpr const char* kDeleteChatPins = "DELETE FROM pins WHERE chat_id = ?1";
constexpr const char* kPurgingChats = "SELECT id FROM chats WHERE purging = 1";
constexpr std::int64_t kPurgeSlice = 500;
// The newest message of the chat's oldest slice (NULL, read as 0, when none is left).
constexpr const char* kPurgeSliceEnd =
    "SELECT max(id) FROM (SELECT id FROM messages WHERE chat_id = ?1 ORDER BY id LIMIT ?2)";
// The index reads each entry's text from the messages row (external content): run after
// the queued index changes (run_deferred), while the rows still hold what was indexed.
// Deleted messages have no entry.
constexpr const char* kPurgeFts =
    "DELETE FROM messages_fts WHERE rowid IN "
    "(SELECT id FROM messages WHERE chat_id = ?1 AND id <= ?2 AND is_deleted = 0)";
constexpr const char* kPurgeMessages = "DELETE FROM messages WHERE chat_id = ?1 AND id <= ?2";
// The chat's events for all its members: nobody replays them any more. Events for one user
// (their removal, the chat_deleted each member was sent) stay.
constexpr const char* kPurgeEventsEnd =
    "SELECT max(seq) FROM (SELECT seq FROM events WHERE chat_id = ?1 AND user_id IS NULL "
    "ORDER BY seq LIMIT ?2)";
constexpr const char* kPurgeEvents =
    "DELETE FROM events WHERE chat_id = ?1 AND user_id IS NULL AND seq <= ?2";
constexpr const char* kDeleteChatHidden = "DELETE FROM hidden_messages WHERE chat_id = ?1";
constexpr const char* kDeleteChat = "DELETE FROM chats WHERE id = ?1";
constexpr const char* kSetRole =
    "UPDATE chat_members SET role = ?3 WHERE chat_id = ?1 AND user_id = ?2";
// ?1 chat, ?2 member, ?3 their role now, ?4 the new one, ?5 actor, ?6 the actor's role.
constexpr const char* kSetRoleIfUnchanged =
    "UPDATE chat_members SET role = ?4 WHERE chat_id = ?1 AND user_id = ?2 AND role = ?3 "
    "AND EXISTS (SELECT 1 FROM chat_members a WHERE a.chat_id = ?1 AND a.user_id = ?5 "
    "AND a.role = ?6)";
constexpr const char* kRemoveMember =
    "DELETE FROM chat_members WHERE chat_id = ?1 AND user_id = ?2";
constexpr const char* kStands =
    "SELECT 1 FROM chat_members WHERE chat_id = ?1 AND user_id = ?2 AND role = ?3";

// A message's ordinal is the chat's count of messages so far plus one; after the insert,
// the count, the activity time and the last message move in one update of the chat row.
constexpr const char* kInsertMessage =
    "INSERT INTO messages(chat_id, sender_id, text, created_at, forwarded_from, client_id, "
    "ordinal) "
    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, message_count + 1 FROM chats WHERE id = ?1";
// A chat's newest message and its activity time (the newest message's created_at, or the
// chat's own before its first message).
constexpr const char* kChatLatest =
    "SELECT last_message_id, last_activity_at FROM chats WHERE id = ?1";
constexpr const char* kBumpChat =
    "UPDATE chats SET message_count = message_count + 1, last_activity_at = ?2, "
    "last_message_id = ?3 WHERE id = ?1";
constexpr const char* kSenderWatermarks =
    "UPDATE chat_members SET last_read_message_id = max(last_read_message_id, ?3), "
    "last_delivered_message_id = max(last_delivered_message_id, ?3) WHERE chat_id = ?1 AND user_id "
    "= ?2";
constexpr const char* kInsertFts =
    "INSERT INTO messages_fts(rowid, text, chat_id) VALUES (?1, ?2, ?3)";
// An external-content index removes an entry's terms by the values it was made from.
constexpr const char* kDeleteFts =
    "INSERT INTO messages_fts(messages_fts, rowid, text, chat_id) VALUES ('delete', ?1, ?2, ?3)";
constexpr const char* kLiveText =
    "SELECT text, chat_id FROM messages WHERE id = ?1 AND is_deleted = 0 AND " CHAT_SQL_NOT_PURGING(
        "chat_id");
// edited_at only grows, by a microsecond at least: of two edits racing, the one committed
// last may have read the clock first, and clients tell a newer version of a message by it
// (a tie would leave the older text in place of the newer).
constexpr const char* kEditMessage =
    "UPDATE messages SET text = ?2, edited_at = max(?3, COALESCE(edited_at, created_at) + 1) "
    "WHERE id = ?1 AND is_deleted = 0";
constexpr const char* kDeleteMessage =
    "UPDATE messages SET text = '', is_deleted = 1 WHERE id = ?1 AND is_deleted = 0";
constexpr const char* kIsHidden =
    "SELECT 1 FROM hidden_messages WHERE user_id = ?1 AND chat_id = ?2 AND message_id = ?3";
constexpr const char* kHideMessage =
    "INSERT OR IGNORE INTO hidden_messages(user_id, chat_id, message_id) VALUES (?1, ?2, ?3)";
// The members who hid the chat's message ?2 or one of its pinned messages, by id.
constexpr const char* kHidersOfShown =
    "SELECT DISTINCT m.user_id FROM chat_members m JOIN hidden_messages h ON h.user_id = "
    "m.user_id AND h.chat_id = m.chat_id WHERE m.chat_id = ?1 AND (h.message_id = ?2 OR "
    "h.message_id IN (SELECT p.message_id FROM pins p WHERE p.chat_id = ?1)) ORDER BY m.user_id";
// Through hidden_messages(chat_id, message_id): a lookup for the hiders alone (it went
// through the chat's members, a lookup each, before that index).
constexpr const char* kHiddenBy =
    "SELECT user_id FROM hidden_messages WHERE chat_id = ?1 AND message_id = ?2";

// The newest message of the chat at or below a value: watermarks only ever name messages.
constexpr const char* kClampToMessage =
    "SELECT COALESCE(max(id), 0) FROM messages WHERE chat_id = ?1 AND id <= ?2";
constexpr const char* kRaiseRead =
    "UPDATE chat_members SET last_read_message_id = ?3, "
    "last_delivered_message_id = max(last_delivered_message_id, ?3) "
    "WHERE chat_id = ?1 AND user_id = ?2 AND last_read_message_id < ?3";
constexpr const char* kRaiseDelivered =
    "UPDATE chat_members SET last_delivered_message_id = ?3 "
    "WHERE chat_id = ?1 AND user_id = ?2 AND last_delivered_message_id < ?3";
constexpr const char* kReadWatermark =
    "SELECT last_read_message_id FROM chat_members WHERE chat_id = ?1 AND user_id = ?2";

constexpr const char* kMemberCount = "SELECT count(*) FROM chat_members WHERE chat_id = ?1";
constexpr const char* kLowestDeliveredValue =
    "SELECT COALESCE(min(last_delivered_message_id), 0) FROM chat_members WHERE chat_id = ?1";

#undef NOT_HIDDEN
#undef NOT_HIDDEN_FOR

// ---- row readers -------------------------------------------------------------------------

EventRecord read_event(const Statement& s) {
  EventRecord e;
  e.seq = s.int64(0);
  e.chat_id = s.int64(1);
  e.user_id = s.optional_int64(2);
  e.type = s.text(3);
  e.payload = s.text(4);
  e.created_at = s.int64(5);
  return e;
}

std::string json_array(const std::vector<std::int64_t>& ids) {
  std::string out = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

PinRecord read_pin(const Statement& s) {
  return {s.int64(0), s.int64(1), s.int64(2), s.int64(3), s.int64(4)};
}

std::optional<ChatRecord> chat_by_id(Connection& c, std::int64_t id) {
  auto s = c.prepare(kChatById);
  s.bind(1, id);
  return first_row(s, read_chat);
}

Watermarks watermarks_of(Connection& c, std::int64_t chat_id) {
  Watermarks w;
  auto read = c.prepare(kLowestRead);
  read.bind(1, chat_id);
  while (read.step()) w.lowest_read.push_back({read.int64(0), read.int64(1)});
  auto delivered = c.prepare(kLowestDelivered);
  delivered.bind(1, chat_id);
  while (delivered.step()) w.lowest_delivered.push_back({delivered.int64(0), delivered.int64(1)});
  return w;
}

std::optional<MemberRecord> member_of(Connection& c, std::int64_t chat_id, std::int64_t user_id) {
  auto s = c.prepare(kMember);
  s.bind(1, chat_id).bind(2, user_id);
  return first_row(s, read_member);
}

// Whether `by` still holds (Standing), read inside a write's transaction: the writer
// thread makes writes take turns, so it holds until the commit.
bool stands(Connection& c, const Standing& by) {
  if (!by.role) return member_of(c, by.chat_id, by.user_id).has_value();
  return c.prepare(kStands)
      .bind(1, by.chat_id)
      .bind(2, by.user_id)
      .bind(3, role_name(*by.role))
      .step();
}

std::vector<MemberRecord> members_of(Connection& c, std::int64_t chat_id) {
  std::vector<MemberRecord> out;
  auto s = c.prepare(kMembers);
  s.bind(1, chat_id);
  while (s.step()) out.push_back(read_member(s));
  return out;
}

std::optional<MessageRecord> message_by_id(Connection& c, std::int64_t id) {
  auto s = c.prepare(kMessageById);
  s.bind(1, id);
  return first_row(s, read_message);
}

// What a repeated client_id answers (send_message, find_sent).
std::optional<MessageRecord> message_by_client_id(Connection& c, std::int64_t chat_id,
                                                  std::int64_t sender_id,
                                                  const std::string& client_id) {
  auto s = c.prepare(kMessageByClientId);
  s.bind(1, chat_id).bind(2, sender_id).bind(3, client_id);
  return first_row(s, read_message);
}

// The first `limit` rows of a page (kPage*) whose ids are not among `hidden` (kHidden*,
// the same range in the same order), merged rather than looked up row by row.
std::vector<MessageRecord> visible_rows(Statement& rows, Statement& hidden, bool newest_first,
                                        std::size_t limit) {
  std::vector<MessageRecord> out;
  out.reserve(limit);
  bool more_hidden = hidden.step();
  while (out.size() < limit && rows.step()) {
    const std::int64_t id = rows.int64(0);
    while (more_hidden && (newest_first ? hidden.int64(0) > id : hidden.int64(0) < id)) {
      more_hidden = hidden.step();
    }
    if (more_hidden && hidden.int64(0) == id) continue;
    out.push_back(read_message(rows));
  }
  return out;
}

// Fills in the senders' names, reading each sender once (a page has few of them).
void name_senders(Connection& c, std::vector<MessageRecord>& messages) {
  std::vector<std::pair<std::int64_t, std::string>> names;
  for (auto& m : messages) {
    if (m.sender_id == 0) continue;  // the sender's account was deleted
    auto known = std::find_if(names.begin(), names.end(),
                              [&](const auto& n) { return n.first == m.sender_id; });
    if (known == names.end()) {
      auto s = c.prepare(kUsernameById);
      s.bind(1, m.sender_id);
      names.emplace_back(m.sender_id, s.step() ? s.text(0) : std::string());
      known = std::prev(names.end());
    }
    m.sender_username = known->second;
  }
}

std::int64_t scalar(Statement& s) {
  return s.step() ? s.int64(0) : 0;
}
std::int64_t scalar(Statement&& s) {
  return scalar(s);
}

std::int64_t unread_of(Connection& c, std::int64_t chat_id, std::int64_t user_id) {
  auto s = c.prepare(kUnread);
  s.bind(1, chat_id).bind(2, user_id);
  return s.step() ? std::max<std::int64_t>(0, s.int64(0)) : 0;
}

// The newest message of the chat that `viewer` did not hide (0: anyone's newest).
std::optional<MessageRecord> last_visible(Connection& c, std::int64_t chat_id,
                                          std::int64_t viewer) {
  auto s = c.prepare(kLastVisibleMessage);
  s.bind(1, chat_id).bind(2, viewer);
  if (!s.step()) return std::nullopt;
  return read_message(s);
}

// The ids a query of a chat (?1) and one more id (?2) answers, in its order.
std::vector<std::int64_t> ids_of(Connection& c, const char* sql, std::int64_t chat_id,
                                 std::int64_t other) {
  std::vector<std::int64_t> ids;
  auto s = c.prepare(sql);
  s.bind(1, chat_id).bind(2, other);
  while (s.step()) ids.push_back(s.int64(0));
  return ids;
}

// The chat's pinned message ids that `viewer` did not hide (0: all of them), in pin order.
std::vector<std::int64_t> pinned_for(Connection& c, std::int64_t chat_id, std::int64_t viewer) {
  return ids_of(c, kPinnedForViewer, chat_id, viewer);
}

std::optional<ChatSummary> summary_of(Connection& c, std::int64_t chat_id, std::int64_t viewer) {
  auto chat = chat_by_id(c, chat_id);
  if (!chat) return std::nullopt;
  ChatSummary out;
  out.chat = std::move(*chat);
  out.members = members_of(c, chat_id);
  auto me = std::find_if(out.members.begin(), out.members.end(),
                         [&](const MemberRecord& m) { return m.user_id == viewer; });
  if (me == out.members.end()) return std::nullopt;
  out.last_read_message_id = me->last_read_message_id;
  out.last_message = last_visible(c, chat_id, viewer);
  out.unread_count = unread_of(c, chat_id, viewer);
  out.pinned_message_ids = pinned_for(c, chat_id, viewer);
  return out;
}

// The deleted chat leaves the API: members (so no read, write or replay reaches it), pins,
// and the private pair (which may start a chat anew). The rest goes in slices (kRetireChat).
void retire_chat(Connection& c, std::int64_t chat_id) {
  c.prepare(kDeleteChatMembers).bind(1, chat_id).exec();
  c.prepare(kDeleteChatPins).bind(1, chat_id).exec();
  c.prepare(kRetireChat).bind(1, chat_id).exec();
}

// One slice of a retired chat's rows, oldest first: messages with their index entries,
// then events, then the hides and the chat row. false once the chat row is gone.
bool purge_slice(Connection& c, std::int64_t chat_id) {
  c.run_deferred();  // index changes queued for its messages, while they are there to read
  Transaction tx(c);
  if (const auto upto = scalar(c.prepare(kPurgeSliceEnd).bind(1, chat_id).bind(2, kPurgeSlice));
      upto > 0) {
    c.prepare(kPurgeFts).bind(1, chat_id).bind(2, upto).exec();
    c.prepare(kPurgeMessages).bind(1, chat_id).bind(2, upto).exec();
  } else if (const auto seq =
                 scalar(c.prepare(kPurgeEventsEnd).bind(1, chat_id).bind(2, kPurgeSlice));
             seq > 0) {
    c.prepare(kPurgeEvents).bind(1, chat_id).bind(2, seq).exec();
  } else {
    c.prepare(kDeleteChatHidden).bind(1, chat_id).exec();
    c.prepare(kDeleteChat).bind(1, chat_id).exec();
    tx.commit();
    return false;
  }
  tx.commit();
  return true;
}

// The events the current write transaction has logged. Only the writer thread writes, so
// a thread-local list is the transaction's own.
std::vector<EventRecord>& pending_events() {
  thread_local std::vector<EventRecord> pending;
  return pending;
}

// What the log holds of message `m`, brought in line with its text as it now is, before
// the edit or delete event that is about to follow (NewEvent::message_id): its message
// event rewritten, its earlier edit events dropped (the new event supersedes them, and a
// rewrite of every one of them made each edit cost more than the last). Seqs may skip.
void relog_text(Connection& c, const MessageRecord& m) {
  constexpr Micros kClockMargin = 3'600'000'000;  // an hour
  std::vector<std::pair<std::int64_t, std::string>> logged;
  std::vector<std::int64_t> superseded;
  auto rows = c.prepare(kLoggedForMessage);
  rows.bind(1, m.chat_id).bind(2, m.id).bind(3, m.created_at - kClockMargin);
  while (rows.step()) {
    const std::string type = rows.text(2);
    if (type == "edit") {
      superseded.push_back(rows.int64(0));
    } else if (type == "message") {  // pins name the message too, without its text
      logged.emplace_back(rows.int64(0), rows.text(1));
    }
  }
  for (const auto& [seq, payload] : logged) {
    c.prepare(kRelogPayload).bind(1, seq).bind(2, with_logged_text(payload, m.text)).exec();
  }
  for (auto seq : superseded) c.prepare(kDropLoggedEvent).bind(1, seq).exec();
}

// The members of the chat who hid the message for themselves.
std::vector<std::int64_t> hiders_of(Connection& c, std::int64_t chat_id, std::int64_t message_id) {
  return ids_of(c, kHiddenBy, chat_id, message_id);
}

// The renamed chat as its event shows it (RenamedChat), in the rename's transaction.
RenamedChat renamed_view(Connection& c, ChatRecord chat) {
  RenamedChat out;
  ChatSummary& shared = out.shared;
  const std::int64_t chat_id = chat.id;
  shared.chat = std::move(chat);
  shared.members = members_of(c, chat_id);
  shared.last_message = last_visible(c, chat_id, 0);
  shared.pinned_message_ids = pinned_for(c, chat_id, 0);
  const auto hiders =
      ids_of(c, kHidersOfShown, chat_id, shared.last_message ? shared.last_message->id : 0);
  for (const std::int64_t hider : hiders) {
    out.seen_by_hiders.push_back(
        {hider, last_visible(c, chat_id, hider), pinned_for(c, chat_id, hider)});
  }
  return out;
}

// Read in the write's transaction: the only writer's, so every hide committed before it
// (or earlier in its group) is seen.
void append_events(Connection& c, const std::vector<NewEvent>& events, Micros now) {
  for (const auto& e : events) {
    std::vector<std::int64_t> hidden_from;
    if (skips_hiders(e.type, e.user_id) && e.message_id)
      hidden_from = hiders_of(c, e.chat_id, *e.message_id);
    // Copies of messages are logged without their text (logged_text.hpp); sent with it.
    const bool copies = carries_message_copies(e.type);
    const std::string without_texts = copies ? without_copy_texts(e.payload) : std::string();
    c.prepare(kInsertEvent)
        .bind(1, e.chat_id)
        .bind(2, e.user_id)
        .bind(3, e.type)
        .bind(4, copies ? without_texts : e.payload)
        .bind(5, now)
        .bind(6, e.message_id)
        .exec();
    pending_events().push_back({c.last_insert_rowid(), e.chat_id, e.user_id, e.type, e.payload, now,
                                std::move(hidden_from)});
  }
}

// The full-text index changes of a write, deferred to the end of its transaction (for a
// group commit, the group's): once messages_fts has changed in a transaction, FTS5 writes
// the terms it holds in memory to a new index segment at every savepoint, so indexing
// inside each write's savepoint made one segment per message, and writing and merging
// them took a fifth of the writer's time. Queued in order, so an edit or a deletion of a
// message sent earlier in the same group applies after its insertion. `sql` binds the
// message's id, text and chat.
// The text goes in as the index's view of the messages (migration 10) shows it.
void queue_index_change(Connection& c, const char* sql, std::int64_t id, const std::string& text,
                        std::int64_t chat_id) {
  c.defer([sql, id, text = unicode::search_folded_cyrillic(text), chat_id](Connection& conn) {
    conn.prepare(sql).bind(1, id).bind(2, text).bind(3, chat_id).exec();
  });
}
void index_text(Connection& c, std::int64_t id, const std::string& text, std::int64_t chat_id) {
  queue_index_change(c, kInsertFts, id, text, chat_id);
}

// A message not deleted, as the index holds it, before a write changes it.
struct LiveText {
  std::string text;
  std::int64_t chat_id = 0;
};
std::optional<LiveText> live_text(Connection& c, std::int64_t id) {
  auto s = c.prepare(kLiveText);
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return LiveText{s.text(0), s.int64(1)};
}

// `before` is the message before this write changed it: what the queued changes before
// this one leave indexed for it.
void unindex_text(Connection& c, std::int64_t id, const LiveText& before) {
  queue_index_change(c, kDeleteFts, id, before.text, before.chat_id);
}

// Moves a read watermark up (delivered watermarks move by mark_delivered_many).
WatermarkChange raise_read_watermark(Connection& c, std::int64_t chat_id, std::int64_t user_id,
                                     std::int64_t value, const EventsFor<WatermarkChange>& events) {
  Transaction tx(c);
  WatermarkChange change{chat_id, user_id, 0, false};
  auto clamp = c.prepare(kClampToMessage);
  clamp.bind(1, chat_id).bind(2, value);
  const std::int64_t target = clamp.step() ? clamp.int64(0) : 0;
  change.changed =
      c.prepare(kRaiseRead).bind(1, chat_id).bind(2, user_id).bind(3, target).exec() == 1;
  auto current = c.prepare(kReadWatermark);
  current.bind(1, chat_id).bind(2, user_id);
  change.value = current.step() ? current.int64(0) : 0;
  if (change.changed) append_events(c, events(change), now_micros());
  tx.commit();
  return change;
}

}  // namespace

template <class F>
auto SqliteChatStore::write(F f) {
  auto publishing = [this, f = std::move(f)](Connection& c) mutable {
    pending_events().clear();  // a rolled-back transaction may have left some
    auto result = f(c);
    auto committed = std::exchange(pending_events(), {});
    // Told once the group this write belongs to has committed, in commit order.
    if (!committed.empty() && listener_) {
      db_.after_commit([this, events = std::move(committed)] { listener_(events); });
    }
    return result;
  };
  return db_.write(std::move(publishing));
}

// ---- reads -------------------------------------------------------------------------------

boost::asio::awaitable<std::optional<std::int64_t>> SqliteChatStore::find_private_chat(
    std::int64_t a, std::int64_t b) {
  auto q = [key = private_chat_key(a, b)](Connection& c) {
    auto s = c.prepare(kFindPrivate);
    s.bind(1, key);
    return first_row(s, [](Statement& row) { return row.int64(0); });
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::optional<ChatRecord>> SqliteChatStore::find_chat(std::int64_t chat_id) {
  auto q = [chat_id](Connection& c) { return chat_by_id(c, chat_id); };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::optional<MemberRecord>> SqliteChatStore::find_member(
    std::int64_t chat_id, std::int64_t user_id) {
  auto q = [chat_id, user_id](Connection& c) { return member_of(c, chat_id, user_id); };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::vector<MemberRecord>> SqliteChatStore::members(std::int64_t chat_id) {
  auto q = [chat_id](Connection& c) { return members_of(c, chat_id); };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::vector<std::int64_t>> SqliteChatStore::chat_ids_of(
    std::int64_t user_id) {
  auto q = [user_id](Connection& c) {
    std::vector<std::int64_t> ids;
    auto s = c.prepare(kChatIdsOfUser);
    s.bind(1, user_id);
    while (s.step()) ids.push_back(s.int64(0));
    return ids;
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::vector<ChatSummary>> SqliteChatStore::summaries(std::int64_t viewer) {
  auto q = [viewer](Connection& c) {
    std::vector<std::int64_t> ids;
    {
      auto s = c.prepare(kMyChatsByActivity);
      s.bind(1, viewer);
      while (s.step()) ids.push_back(s.int64(0));
    }
    std::vector<ChatSummary> out;
    for (auto id : ids) {
      if (auto summary = summary_of(c, id, viewer)) out.push_back(std::move(*summary));
    }
    return out;
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::optional<ChatSummary>> SqliteChatStore::summary(std::int64_t chat_id,
                                                                            std::int64_t viewer) {
  auto q = [chat_id, viewer](Connection& c) { return summary_of(c, chat_id, viewer); };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::vector<MemberView>> SqliteChatStore::member_views(
    std::int64_t viewer, std::vector<std::int64_t> chat_ids) {
  auto q = [viewer, chat_ids = std::move(chat_ids)](Connection& c) {
    std::vector<MemberView> out;
    out.reserve(chat_ids.size());
    for (const std::int64_t chat_id : chat_ids) {
      auto me = member_of(c, chat_id, viewer);
      if (!me) continue;
      MemberView& v = out.emplace_back();
      v.chat_id = chat_id;
      v.last_message = last_visible(c, chat_id, viewer);
      v.unread_count = unread_of(c, chat_id, viewer);
      v.last_read_message_id = me->last_read_message_id;
      v.pinned_message_ids = pinned_for(c, chat_id, viewer);
      v.marks = watermarks_of(c, chat_id);
    }
    return out;
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<UnreadCounts> SqliteChatStore::unread_counts(
    std::int64_t viewer, std::vector<std::int64_t> chat_ids) {
  // One read transaction, and one writer: the events it sees are exactly those up to the
  // newest seq it reads.
  auto q = [viewer, chat_ids = std::move(chat_ids)](Connection& c) {
    UnreadCounts out;
    out.seq = scalar(c.prepare(kMaxSeq));
    out.counts.reserve(chat_ids.size());
    for (const std::int64_t chat_id : chat_ids) out.counts.push_back(unread_of(c, chat_id, viewer));
    return out;
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<Watermarks> SqliteChatStore::watermarks(std::int64_t chat_id) {
  auto q = [chat_id](Connection& c) { return watermarks_of(c, chat_id); };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::optional<HistoryPage>> SqliteChatStore::history(
    std::int64_t chat_id, std::int64_t viewer, std::optional<std::int64_t> before,
    std::optional<std::int64_t> after, int limit) {
  auto q = [=](Connection& c) -> std::optional<HistoryPage> {
    auto member = member_of(c, chat_id, viewer);
    if (!member) return std::nullopt;
    HistoryPage page;
    page.viewer = std::move(*member);
    const std::int64_t upper = before.value_or(INT64_MAX);
    auto rows = c.prepare(after ? kPageOldestFirst : kPageNewestFirst);
    auto hidden = c.prepare(after ? kHiddenOldestFirst : kHiddenNewestFirst);
    rows.bind(1, chat_id);
    hidden.bind(1, viewer).bind(2, chat_id);
    if (after) {
      rows.bind(2, *after).bind(3, upper);
      hidden.bind(3, *after).bind(4, upper);
    } else {
      rows.bind(2, upper);
      hidden.bind(3, upper);
    }
    page.messages = visible_rows(rows, hidden, !after, static_cast<std::size_t>(limit) + 1);
    if (static_cast<int>(page.messages.size()) > limit) {
      page.has_more = true;
      if (!after) page.visible_below = page.messages.back().id;
      page.messages.pop_back();
    }
    name_senders(c, page.messages);
    page.marks = watermarks_of(c, chat_id);
    return page;
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::optional<MessageRecord>> SqliteChatStore::find_message(
    std::int64_t id) {
  auto q = [id](Connection& c) { return message_by_id(c, id); };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::optional<MessageRecord>> SqliteChatStore::find_sent(
    std::int64_t chat_id, std::int64_t sender_id, std::string client_id) {
  auto q = [chat_id, sender_id, client_id = std::move(client_id)](Connection& c) {
    return message_by_client_id(c, chat_id, sender_id, client_id);
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<bool> SqliteChatStore::is_hidden(std::int64_t user_id, std::int64_t chat_id,
                                                        std::int64_t message_id) {
  auto q = [=](Connection& c) {
    return c.prepare(kIsHidden).bind(1, user_id).bind(2, chat_id).bind(3, message_id).step();
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::vector<MessageRecord>> SqliteChatStore::search(
    std::int64_t viewer, std::vector<std::string> terms, std::optional<std::int64_t> chat_id,
    int limit) {
  auto q = [terms = std::move(terms), viewer, chat_id, limit, walk = search_walk_](Connection& c) {
    std::vector<MessageRecord> out;
    // The chats searched are named in the index query, which then walks their matches
    // alone: the one asked for, or all of the caller's, 64 at a time (an OR of many more
    // costs the index more than it saves).
    std::vector<std::int64_t> chats;
    if (chat_id.value_or(0) != 0) {  // (0: every chat, as kSearch's ?3)
      chats.push_back(*chat_id);
    } else {
      auto mine = c.prepare(kMyChatIds);
      mine.bind(1, viewer);
      while (mine.step()) chats.push_back(mine.int64(0));
    }
    // Each such query costs a millisecond or so (about 10 µs a chat named, found or not,
    // and a prefix's merge): for a caller in more than 64 chats, everyone's matches are
    // walked first, newest first until `limit` of the caller's, which is quicker when few
    // messages match or the caller's are among the newest. Past `walk` (1 ms) for each
    // query the chats would take, the chats are named after all, so a search costs at most
    // about twice what naming them costs. Walking to the end, a short prefix visited every
    // match in the file: seconds of a reader thread in a large one (and anyone can make 65
    // groups).
    const std::size_t queries = (chats.size() + kMaxSearchChatsNamed - 1) / kMaxSearchChatsNamed;
    if (queries > 1 && walk.count() > 0) {
      const auto budget = walk * static_cast<std::int64_t>(queries);
      const bool walked = c.within(budget, [&] {
        auto s = c.prepare(kSearch);
        s.bind(1, fts_match(terms)).bind(2, viewer).bind(3, 0).bind(4, limit);
        while (s.step()) out.push_back(read_message(s));
      });
      if (walked) return out;
      out.clear();
    }
    const auto newest_first = [](const MessageRecord& a, const MessageRecord& b) {
      return a.id > b.id;
    };
    const auto wanted = static_cast<std::size_t>(std::max(limit, 0));
    for (std::size_t from = 0; from < chats.size(); from += kMaxSearchChatsNamed) {
      const auto first = chats.begin() + static_cast<std::ptrdiff_t>(from);
      const std::vector<std::int64_t> part(
          first,
          first + static_cast<std::ptrdiff_t>(std::min(kMaxSearchChatsNamed, chats.size() - from)));
      // Once `limit` are found, a part need only find newer ones than the oldest of them.
      const std::int64_t above = out.size() >= wanted && !out.empty() ? out.back().id : 0;
      auto s = c.prepare(above > 0 ? kSearchNewerThan : kSearch);
      s.bind(1, fts_match(terms, part)).bind(2, viewer).bind(3, chat_id.value_or(0)).bind(4, limit);
      if (above > 0) s.bind(5, above);
      const std::size_t before = out.size();
      while (s.step()) out.push_back(read_message(s));
      if (before > 0 && out.size() > before) {
        std::inplace_merge(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(before),
                           out.end(), newest_first);
        if (out.size() > wanted) out.resize(wanted);
      }
    }
    return out;
  };
  co_return co_await db_.scan(std::move(q));
}

boost::asio::awaitable<std::vector<PinRecord>> SqliteChatStore::pins(std::int64_t chat_id) {
  auto q = [chat_id](Connection& c) {
    std::vector<PinRecord> out;
    auto s = c.prepare(kPinsOfChat);
    s.bind(1, chat_id);
    while (s.step()) out.push_back(read_pin(s));
    return out;
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::optional<PinRecord>> SqliteChatStore::find_pin(std::int64_t pin_id) {
  auto q = [pin_id](Connection& c) {
    auto s = c.prepare(kPinById);
    s.bind(1, pin_id);
    return first_row(s, read_pin);
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<Replay> SqliteChatStore::replay(std::int64_t user_id, std::int64_t since,
                                                       int limit) {
  auto q = [=](Connection& c) {
    Replay r;
    // One read transaction (as every read), so the newest seq and the rows agree. SQLite
    // has one writer, so seq order is commit order and no event can later appear below a
    // seq read here.
    const std::int64_t pruned = scalar(c.prepare(kPrunedThrough));
    const std::int64_t newest = scalar(c.prepare(kMaxSeq));
    if (since < pruned) {
      r.resync_required = true;
      r.last_seq = newest;
    } else {
      // Each part in seq order and at most a page past `since`: the page is the first
      // `limit` of their union.
      std::vector<std::pair<std::int64_t, std::int64_t>> chats;  // (chat, joined_seq)
      auto member = c.prepare(kReplayChats);
      member.bind(1, user_id);
      while (member.step()) chats.emplace_back(member.int64(0), member.int64(1));
      // The lowest limit + 1 seqs of all the parts, kept in a max-heap: a part is read only
      // while its seqs could still enter it, and only the page's events are read whole
      // (reading every part's page of events first held 400 MB for one request of a user in
      // 40 busy chats).
      const auto page = static_cast<std::size_t>(limit) + 1;
      std::priority_queue<std::int64_t> lowest;
      auto offer = [&](Statement& s) {
        while (s.step()) {
          const std::int64_t seq = s.int64(0);
          if (lowest.size() == page) {
            if (seq >= lowest.top()) return;  // and so is every later one of this part
            lowest.pop();
          }
          lowest.push(seq);
        }
      };
      auto mine = c.prepare(kReplayUserSeqs);
      mine.bind(1, user_id).bind(2, since).bind(3, limit + 1);
      offer(mine);
      for (const auto& [chat_id, joined_seq] : chats) {
        auto s = c.prepare(kReplayChatSeqs);
        s.bind(1, chat_id).bind(2, std::max(since, joined_seq)).bind(3, limit + 1).bind(4, user_id);
        offer(s);
      }
      std::vector<std::int64_t> seqs;
      seqs.reserve(lowest.size());
      for (; !lowest.empty(); lowest.pop()) seqs.push_back(lowest.top());
      std::reverse(seqs.begin(), seqs.end());
      r.events.reserve(seqs.size());
      for (auto seq : seqs) {
        auto e = c.prepare(kEventBySeq);
        e.bind(1, seq);
        if (e.step()) r.events.push_back(read_event(e));
      }
      if (static_cast<int>(r.events.size()) > limit) {
        r.has_more = true;
        r.events.pop_back();
      }
      // Past the newest event, the reader moves back to it (a cursor from a database
      // since restored from a backup): ahead of the log, it would skip the events to come.
      r.last_seq = r.has_more ? r.events.back().seq : newest;
    }
    return r;
  };
  // A page costs a few index lookups per chat of the user's. For most users that is less
  // than a trip to a reader thread and back (in a reconnect storm, thousands of them a
  // second); a user in many chats is replayed on a reader thread, off the I/O thread.
  const std::int64_t chats = co_await db_.read([user_id](Connection& c) {
    auto s = c.prepare(kCountUserChats);
    s.bind(1, user_id);
    return scalar(std::move(s));
  });
  if (chats <= kInlineReplayChats) co_return co_await db_.read(std::move(q));
  co_return co_await db_.scan(std::move(q));
}

boost::asio::awaitable<std::vector<EventRecord>> SqliteChatStore::events_since(
    std::vector<std::int64_t> chat_ids, std::vector<std::int64_t> user_ids, std::int64_t after_seq,
    int limit) {
  auto q = [chats = json_array(chat_ids), users = json_array(user_ids), after_seq,
            limit](Connection& c) {
    std::vector<EventRecord> out;
    auto s = c.prepare(kEventsSince);
    s.bind(1, after_seq).bind(2, chats).bind(3, users).bind(4, limit);
    while (s.step()) out.push_back(read_event(s));
    // Read for delivery: hiders kept from what they hid, and the copies of messages brought
    // up to date, in the same snapshot.
    if (const auto seqs = seqs_skipping_hiders(out); !seqs.empty()) {
      std::vector<std::pair<std::int64_t, std::int64_t>> hiders;
      auto h = c.prepare(kHidersOfEvents);
      h.bind(1, json_array(seqs));
      while (h.step()) hiders.emplace_back(h.int64(0), h.int64(1));
      apply_hiders(out, hiders);
    }
    CopiesInLog copies(out);
    if (!copies.ids().empty()) {
      std::unordered_map<std::int64_t, MessageRecord> now;
      auto m = c.prepare(kCopiedMessages);
      m.bind(1, json_array(copies.ids()));
      while (m.step()) {
        auto message = read_message(m);
        now.emplace(message.id, std::move(message));
      }
      copies.apply(now);
    }
    return out;
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<ReadStates> SqliteChatStore::read_states(
    std::int64_t user_id, std::optional<std::int64_t> only_chat) {
  auto q = [user_id, only_chat](Connection& c) {
    ReadStates out;
    out.seq = scalar(c.prepare(kMaxSeq));
    auto s = c.prepare(only_chat ? kReadStateOfChat : kReadStates);
    s.bind(1, user_id);
    if (only_chat) s.bind(2, *only_chat);
    while (s.step()) {
      out.chats.push_back({s.int64(0), s.int64(1), std::max<std::int64_t>(0, s.int64(2))});
    }
    return out;
  };
  co_return co_await db_.read(std::move(q));
}

boost::asio::awaitable<std::int64_t> SqliteChatStore::newest_seq() {
  auto q = [](Connection& c) { return scalar(c.prepare(kMaxSeq)); };
  co_return co_await db_.read(std::move(q));
}

// ---- writes ------------------------------------------------------------------------------

boost::asio::awaitable<CreatedChat> SqliteChatStore::create_chat(NewChat chat,
                                                                 EventsFor<CreatedChat> events) {
  auto q = [chat = std::move(chat), events = std::move(events)](Connection& c) {
    Transaction tx(c);
    CreatedChat out;
    std::optional<std::string> private_key;
    if (chat.type == ChatType::private_chat && chat.members.size() == 2) {
      private_key = private_chat_key(chat.members[0].first, chat.members[1].first);
      auto existing = c.prepare(kFindPrivate);
      existing.bind(1, *private_key);
      if (existing.step()) {
        out.chat_id = existing.int64(0);
        out.created = false;
        return out;  // nothing written: the transaction rolls back
      }
    }
    c.prepare(kInsertChat)
        .bind(1, chat_type_name(chat.type))
        .bind(2, chat.name)
        .bind(3, private_key)
        .bind(4, chat.now)
        .exec();
    out.chat_id = c.last_insert_rowid();
    out.created = true;
    for (const auto& [user_id, role] : chat.members) {
      c.prepare(kInsertMember)
          .bind(1, out.chat_id)
          .bind(2, user_id)
          .bind(3, role_name(role))
          .bind(4, chat.now)
          .exec();
      out.member_ids.push_back(user_id);
    }
    append_events(c, events(out), chat.now);
    tx.commit();
    return out;
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<std::optional<ChatRecord>> SqliteChatStore::rename_chat(
    Standing by, std::string name, EventsFor<RenamedChat> events) {
  auto q = [by, name = std::move(name), events = std::move(events)](Connection& c) {
    Transaction tx(c);
    if (!stands(c, by) || c.prepare(kRenameChat).bind(1, by.chat_id).bind(2, name).exec() != 1)
      return std::optional<ChatRecord>();
    auto chat = chat_by_id(c, by.chat_id);
    append_events(c, events(renamed_view(c, *chat)), now_micros());
    tx.commit();
    return chat;
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<bool> SqliteChatStore::delete_chat(
    Standing by, EventsFor<std::vector<MemberRecord>> events) {
  auto q = [by, events = std::move(events)](Connection& c) {
    Transaction tx(c);
    if (!stands(c, by)) return false;
    const std::int64_t chat_id = by.chat_id;
    auto members = members_of(c, chat_id);
    if (!chat_by_id(c, chat_id)) return false;
    retire_chat(c, chat_id);
    append_events(c, events(members), now_micros());
    tx.commit();
    return true;
  };
  const bool deleted = co_await write(std::move(q));
  if (deleted) co_await purge(by.chat_id);
  co_return deleted;
}

boost::asio::awaitable<std::optional<MemberChange>> SqliteChatStore::add_member(
    Standing by, std::int64_t user_id, Role role, Micros now, EventsFor<MemberChange> events) {
  auto q = [=, events = std::move(events)](Connection& c) {
    Transaction tx(c);
    const std::int64_t chat_id = by.chat_id;
    if (!stands(c, by) || member_of(c, chat_id, user_id)) return std::optional<MemberChange>();
    if (c.prepare(kInsertMember)
            .bind(1, chat_id)
            .bind(2, user_id)
            .bind(3, role_name(role))
            .bind(4, now)
            .exec() != 1) {
      return std::optional<MemberChange>();
    }
    MemberChange change{chat_id, user_id, role, std::nullopt};
    change.seen_by_member = summary_of(c, chat_id, user_id);
    append_events(c, events(change), now);
    tx.commit();
    return std::optional<MemberChange>(change);
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<std::optional<MemberChange>> SqliteChatStore::set_role(
    RoleChange r, EventsFor<MemberChange> events) {
  auto q = [=, events = std::move(events)](Connection& c) {
    Transaction tx(c);
    if (c.prepare(kSetRoleIfUnchanged)
            .bind(1, r.chat_id)
            .bind(2, r.user_id)
            .bind(3, role_name(r.from))
            .bind(4, role_name(r.to))
            .bind(5, r.actor_id)
            .bind(6, role_name(r.actor_role))
            .exec() != 1) {
      return std::optional<MemberChange>();
    }
    MemberChange change{r.chat_id, r.user_id, r.to, std::nullopt};
    append_events(c, events(change), now_micros());
    tx.commit();
    return std::optional<MemberChange>(change);
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<std::optional<Departure>> SqliteChatStore::remove_member(
    std::int64_t chat_id, std::int64_t user_id, std::optional<RemovalBy> by,
    ChooseOwner choose_owner, EventsFor<Departure> events) {
  auto q = [=, choose_owner = std::move(choose_owner), events = std::move(events)](Connection& c) {
    Transaction tx(c);
    auto members = members_of(c, chat_id);
    if (by && !still_removable(members, user_id, *by)) return std::optional<Departure>();
    auto leaving =
        std::find_if(members.begin(), members.end(), [&](auto& m) { return m.user_id == user_id; });
    if (leaving == members.end()) return std::optional<Departure>();
    const MemberRecord gone = *leaving;
    members.erase(leaving);
    Departure d{{chat_id, user_id, gone.role, std::nullopt}, members.empty()};
    if (d.chat_deleted) {
      retire_chat(c, chat_id);
      append_events(c, events(d), now_micros());
    } else {
      // The messages the member hid stay hidden (hidden_messages keeps their rows): added
      // back, they do not see again what they deleted for themselves.
      c.prepare(kRemoveMember).bind(1, chat_id).bind(2, user_id).exec();
      d.change.promoted_user_id = choose_owner(gone, members);
      if (d.change.promoted_user_id) {
        c.prepare(kSetRole)
            .bind(1, chat_id)
            .bind(2, *d.change.promoted_user_id)
            .bind(3, role_name(Role::owner))
            .exec();
      }
      append_events(c, events(d), now_micros());
    }
    tx.commit();
    return std::optional<Departure>(d);
  };
  auto departure = co_await write(std::move(q));
  if (departure && departure->chat_deleted) co_await purge(chat_id);
  co_return departure;
}

boost::asio::awaitable<std::optional<SentMessage>> SqliteChatStore::send_message(
    NewMessage m, EventsFor<SentMessage> events) {
  auto q = [m = std::move(m), events = std::move(events)](Connection& c) mutable {
    Transaction tx(c);
    auto sender = member_of(c, m.chat_id, m.sender_id);
    if (!sender) return std::optional<SentMessage>();
    if (m.copy_of) {
      auto original = c.prepare(kLiveText);
      original.bind(1, *m.copy_of);
      if (!original.step()) {
        SentMessage gone;
        gone.original_gone = true;
        return std::optional<SentMessage>(std::move(gone));
      }
      m.text = original.text(0);
    }
    if (m.client_id) {
      if (auto first = message_by_client_id(c, m.chat_id, m.sender_id, *m.client_id)) {
        SentMessage earlier{std::move(*first), false};
        earlier.marks = watermarks_of(c, m.chat_id);
        return std::optional<SentMessage>(std::move(earlier));
      }
    }
    // A send's created_at is past the chat's previous message's, by a microsecond at least
    // (and by no more than kMaxSendTimeLead past its clock): the clock was read before the
    // write reached the writer, so a send queued behind another may carry the earlier time.
    // Ids order a chat; with this its times agree with them.
    std::int64_t last_message_id = 0;
    Micros created_at = m.now;
    {
      auto latest = c.prepare(kChatLatest);
      latest.bind(1, m.chat_id);
      if (!latest.step()) return std::optional<SentMessage>();
      last_message_id = latest.int64(0);
      created_at = std::max(created_at, std::min(latest.int64(1) + 1, m.now + kMaxSendTimeLead));
    }
    const auto inserted = c.prepare(kInsertMessage)
                              .bind(1, m.chat_id)
                              .bind(2, m.sender_id)
                              .bind(3, m.text)
                              .bind(4, created_at)
                              .bind(5, m.forwarded_from)
                              .bind(6, m.client_id)
                              .exec();
    if (inserted != 1) return std::optional<SentMessage>();
    const std::int64_t id = c.last_insert_rowid();
    // The chat's newest message before this one: past the sender's read watermark, it is
    // someone else's (a send moves its sender's watermark), and this send reads it.
    const bool read_moved = sender->last_read_message_id < last_message_id;
    c.prepare(kBumpChat).bind(1, m.chat_id).bind(2, created_at).bind(3, id).exec();
    c.prepare(kSenderWatermarks).bind(1, m.chat_id).bind(2, m.sender_id).bind(3, id).exec();
    index_text(c, id, m.text, m.chat_id);
    // The row as just written (reading it back cost a statement per send).
    MessageRecord message;
    message.id = id;
    message.chat_id = m.chat_id;
    message.sender_id = m.sender_id;
    message.sender_username = std::move(sender->username);
    message.text = m.text;
    message.created_at = created_at;
    message.forwarded_from = m.forwarded_from;
    message.client_id = m.client_id;
    SentMessage sent{std::move(message), true};
    sent.marks = watermarks_of(c, m.chat_id);
    sent.read_moved = read_moved;
    append_events(c, events(sent), created_at);
    tx.commit();
    return std::optional<SentMessage>(std::move(sent));
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<std::optional<MessageRecord>> SqliteChatStore::edit_message(
    Standing by, std::int64_t id, std::string text, Micros now, EventsFor<MessageRecord> events) {
  auto q = [by, id, text = std::move(text), now, events = std::move(events)](Connection& c) {
    Transaction tx(c);
    if (!stands(c, by)) return std::optional<MessageRecord>();
    auto before = live_text(c, id);
    if (!before || c.prepare(kEditMessage).bind(1, id).bind(2, text).bind(3, now).exec() != 1) {
      return std::optional<MessageRecord>();
    }
    unindex_text(c, id, *before);
    index_text(c, id, text, before->chat_id);
    auto message = message_by_id(c, id);
    relog_text(c, *message);
    append_events(c, events(*message), now);
    tx.commit();
    return message;
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<std::optional<MessageRecord>> SqliteChatStore::delete_message(
    std::optional<Standing> by, std::int64_t id, EventsFor<MessageRecord> events,
    EventsFor<PinRecord> unpinned) {
  auto q = [by, id, events = std::move(events), unpinned = std::move(unpinned)](Connection& c) {
    Transaction tx(c);
    if (by && !stands(c, *by)) return std::optional<MessageRecord>();
    auto before = live_text(c, id);
    if (!before || c.prepare(kDeleteMessage).bind(1, id).exec() != 1) {
      return std::optional<MessageRecord>();
    }
    unindex_text(c, id, *before);
    auto message = message_by_id(c, id);
    relog_text(c, *message);
    const Micros now = now_micros();
    append_events(c, events(*message), now);
    std::optional<PinRecord> unpin;
    {
      auto pin = c.prepare(kUnpinMessage);
      pin.bind(1, message->chat_id).bind(2, id);
      if (pin.step()) unpin = read_pin(pin);
    }
    if (unpin) append_events(c, unpinned(*unpin), now);
    tx.commit();
    return message;
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<bool> SqliteChatStore::hide_message(std::int64_t user_id,
                                                           const MessageRecord& message,
                                                           EventsFor<MessageRecord> events) {
  auto q = [user_id, message, events = std::move(events)](Connection& c) {
    Transaction tx(c);
    // A hide racing the chat's deletion or the hider's removal stores and logs nothing.
    if (!member_of(c, message.chat_id, user_id)) return false;
    const bool hidden = c.prepare(kHideMessage)
                            .bind(1, user_id)
                            .bind(2, message.chat_id)
                            .bind(3, message.id)
                            .exec() == 1;
    if (hidden) append_events(c, events(message), now_micros());
    tx.commit();
    return hidden;
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<WatermarkChange> SqliteChatStore::mark_read(
    std::int64_t chat_id, std::int64_t user_id, std::int64_t value,
    EventsFor<WatermarkChange> events) {
  auto q = [=, events = std::move(events)](Connection& c) {
    return raise_read_watermark(c, chat_id, user_id, value, events);
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<std::vector<DeliveredBatch>> SqliteChatStore::mark_delivered_many(
    DeliveredNotes notes, EventsFor<DeliveredBatch> events) {
  auto q = [notes = std::move(notes), events = std::move(events)](Connection& c) {
    Transaction tx(c);
    std::vector<DeliveredBatch> out;
    out.reserve(notes.size());
    const Micros now = now_micros();
    for (const auto& [chat_id, values] : notes) {
      DeliveredBatch& b = out.emplace_back();
      b.chat_id = chat_id;
      b.member_count = scalar(c.prepare(kMemberCount).bind(1, chat_id));
      b.lowest_before = scalar(c.prepare(kLowestDeliveredValue).bind(1, chat_id));
      for (const auto& [user_id, value] : values) {
        auto clamp = c.prepare(kClampToMessage);
        clamp.bind(1, chat_id).bind(2, value);
        const std::int64_t target = clamp.step() ? clamp.int64(0) : 0;
        if (c.prepare(kRaiseDelivered).bind(1, chat_id).bind(2, user_id).bind(3, target).exec() ==
            1) {
          b.changes.push_back({chat_id, user_id, target, true});
        }
      }
      b.lowest_after = scalar(c.prepare(kLowestDeliveredValue).bind(1, chat_id));
      std::sort(b.changes.begin(), b.changes.end(),
                [](const auto& x, const auto& y) { return x.user_id < y.user_id; });
      if (!b.changes.empty()) append_events(c, events(b), now);
    }
    tx.commit();
    return out;
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<std::optional<std::pair<PinRecord, bool>>> SqliteChatStore::pin(
    Standing by, std::int64_t message_id, Micros now, EventsFor<PinRecord> events) {
  auto q = [=, events = std::move(events)](Connection& c) {
    using Out = std::optional<std::pair<PinRecord, bool>>;
    const std::int64_t chat_id = by.chat_id;
    const std::int64_t user_id = by.user_id;
    Transaction tx(c);
    if (!stands(c, by)) return Out();
    auto live = c.prepare(kLiveMessage);
    live.bind(1, message_id).bind(2, chat_id);
    if (!live.step()) return Out();
    const bool created = c.prepare(kInsertPin)
                             .bind(1, chat_id)
                             .bind(2, message_id)
                             .bind(3, user_id)
                             .bind(4, now)
                             .exec() == 1;
    auto s = c.prepare(kPinByMessage);
    s.bind(1, chat_id).bind(2, message_id);
    s.step();
    PinRecord pin = read_pin(s);
    if (created) append_events(c, events(pin), now);
    tx.commit();
    return Out(std::make_pair(pin, created));
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<bool> SqliteChatStore::unpin(Standing by, std::int64_t pin_id,
                                                    EventsFor<PinRecord> events) {
  auto q = [by, pin_id, events = std::move(events)](Connection& c) {
    Transaction tx(c);
    if (!stands(c, by)) return false;
    auto s = c.prepare(kPinById);
    s.bind(1, pin_id);
    if (!s.step()) return false;
    const PinRecord pin = read_pin(s);
    if (pin.chat_id != by.chat_id) return false;
    c.prepare(kDeletePin).bind(1, pin_id).exec();
    append_events(c, events(pin), now_micros());
    tx.commit();
    return true;
  };
  co_return co_await write(std::move(q));
}

boost::asio::awaitable<bool> SqliteChatStore::purge(std::int64_t chat_id) {
  // The chat has gone already: a write that fails here leaves the rest of its rows to
  // finish_chat_deletions() (at the next start, or the next hourly pruning) rather than
  // failing the deletion.
  try {
    for (;;) {
      auto slice = [chat_id](Connection& c) { return purge_slice(c, chat_id); };
      const bool more = co_await write(std::move(slice));
      if (!more) co_return true;
    }
  } catch (const std::exception& e) {
    spdlog::warn("removing the rows of deleted chat {} stopped: {}", chat_id, e.what());
  }
  co_return false;
}

boost::asio::awaitable<std::int64_t> SqliteChatStore::finish_chat_deletions() {
  auto q = [](Connection& c) {
    std::vector<std::int64_t> ids;
    auto rows = c.prepare(kPurgingChats);
    while (rows.step()) ids.push_back(rows.int64(0));
    return ids;
  };
  const auto ids = co_await db_.read(std::move(q));
  std::int64_t finished = 0;
  for (const auto id : ids) {
    const bool done = co_await purge(id);
    if (done) ++finished;
  }
  co_return finished;
}

boost::asio::awaitable<std::int64_t> SqliteChatStore::prune_events(Micros before) {
  // The newest seq past the window, from a range of the time index (a reader's job), then
  // the events up to it, oldest first, a slice per write.
  const std::int64_t through = co_await db_.scan([before](Connection& c) {
    auto upto = c.prepare(kPruneEventsUpTo);
    upto.bind(1, before);
    return upto.step() ? upto.int64(0) : std::int64_t{0};
  });
  std::int64_t pruned = 0;
  for (;;) {
    auto slice = [through](Connection& c) {
      Transaction tx(c);
      auto oldest = c.prepare(kOldestEvent);
      const std::int64_t first = oldest.step() ? oldest.int64(0) : 0;
      if (first == 0 || first > through) return std::optional<std::int64_t>();
      const std::int64_t upto = std::min(through, first + kPruneSlice - 1);
      const int n = c.prepare(kDeleteEventsUpTo).bind(1, upto).exec();
      c.prepare(kSetPrunedThrough).bind(1, upto).exec();
      tx.commit();
      return std::optional<std::int64_t>(n);
    };
    const auto n = co_await write(std::move(slice));
    if (!n) break;
    pruned += *n;
  }
  co_return pruned;
}

}  // namespace chat::store::sqlite
