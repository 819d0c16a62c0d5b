#include "store/postgres/pg_chat_store.hpp"

#include <algorithm>
#include <exception>
#include <map>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/unicode.hpp"
#include "store/logged_text.hpp"
#include "store/postgres/pg_arrays.hpp"
#include "store/postgres/pg_database.hpp"
#include "store/postgres/pg_pool.hpp"
#include "store/postgres/pg_rows.hpp"
#include "store/sql_columns.hpp"
#include "store/store.hpp"

namespace chat::store::postgres {

// What one write transaction logs. The body only lists its events (append); they are
// written, with their seqs, in the round trip that commits (commit_logged).
struct TxLog {
  void append(const std::vector<NewEvent>& logged, Micros now) {
    for (const auto& e : logged) {
      pending.push_back(e);
      pending_at.push_back(now);
    }
  }

  std::vector<NewEvent> pending;
  std::vector<Micros> pending_at;
  // Members this transaction adds (chat, user): their joined_seq is set under the log's
  // lock to the seq before this transaction's first event, so their replays hold exactly
  // what was logged from their joining on (kStampJoinedSeq).
  std::vector<std::pair<std::int64_t, std::int64_t>> joined;
  std::int64_t seq_floor = 0;       // the newest seq when the transaction began
  bool locked = false;              // the event-log lock may be held
  std::vector<EventRecord> events;  // what was committed
};

namespace {

namespace asio = boost::asio;

// ---- SQL -------------------------------------------------------------------------------

constexpr const char* kChatById = "SELECT " CHAT_SQL_CHAT_COLUMNS " FROM chats c WHERE c.id = $1";
// Locks the chat row: writes to one chat's messages take turns, so message ids increase in
// commit order within a chat.
constexpr const char* kLockChat = "SELECT id FROM chats WHERE id = $1 FOR UPDATE";
constexpr const char* kMember = "SELECT " CHAT_SQL_MEMBER_COLUMNS
                                " FROM chat_members m JOIN users u ON u.id = m.user_id "
                                "WHERE m.chat_id = $1 AND m.user_id = $2";
// Members in the order they joined (the oldest first), which is also succession order.
constexpr const char* kMembers = "SELECT " CHAT_SQL_MEMBER_COLUMNS
                                 " FROM chat_members m JOIN users u ON u.id = m.user_id "
                                 "WHERE m.chat_id = $1 ORDER BY m.joined_at, m.user_id";
constexpr const char* kChatIdsOfUser = "SELECT chat_id FROM chat_members WHERE user_id = $1";
constexpr const char* kMyChatsByActivity =
    "SELECT c.id FROM chat_members m JOIN chats c ON c.id = m.chat_id WHERE m.user_id = $1 "
    "ORDER BY c.last_activity_at DESC, c.id DESC";

// The message `message` of chat `chat` is not hidden for `viewer` (SQL expressions).
#define NOT_HIDDEN_FOR(viewer, chat, message)                                                      \
  "NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = " viewer " AND h.chat_id = " chat \
  " AND h.message_id = " message ")"
#define NOT_HIDDEN(viewer) NOT_HIDDEN_FOR(viewer, "m.chat_id", "m.id")

constexpr const char* kMessageById =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id WHERE m.id = $1";
constexpr const char* kMessageByClientId =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.chat_id = $1 AND m.sender_id = $2 AND m.client_id = $3";
constexpr const char* kLastVisibleMessage =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.chat_id = $1 AND " NOT_HIDDEN("$2") " ORDER BY m.id DESC LIMIT 1";
// A rename's read of the newest message: locked, so an edit or deletion of it in progress
// commits first and is seen (its event then comes before the rename's), or waits.
constexpr const char* kNewestMessageShared =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.chat_id = $1 ORDER BY m.id DESC LIMIT 1 FOR SHARE OF m";
// The same for a member who hid it (a rename's hiders), locked likewise.
constexpr const char* kLastVisibleMessageShared =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.chat_id = $1 AND " NOT_HIDDEN("$2") " ORDER BY m.id DESC LIMIT 1 FOR SHARE OF m";
constexpr const char* kHistoryNewestFirst =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.chat_id = $1 AND m.id < $3 AND " NOT_HIDDEN("$2") " ORDER BY m.id DESC LIMIT $4";
constexpr const char* kHistoryOldestFirst =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.chat_id = $1 AND m.id > $3 AND m.id < $4 AND " NOT_HIDDEN(
        "$2") " ORDER BY m.id LIMIT $5";
// PostgreSQL's own full-text search: every term as a prefix ("term:*"), under the GIN index.
constexpr const char* kSearch =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.search @@ to_tsquery('simple', $1) AND NOT m.is_deleted "
    "AND m.chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = $2) "
    "AND ($3::bigint = 0 OR m.chat_id = $3::bigint) AND " NOT_HIDDEN(
        "$2") " ORDER BY m.id DESC LIMIT $4";

// UNREAD_COUNT, over chats c joined with the member's row m: messages after the watermark
// (by ordinal), less the deleted ones and the ones hidden for the member (as in the SQLite
// store).
#define UNREAD_COUNT                                                                             \
  "c.message_count"                                                                              \
  " - COALESCE((SELECT x.ordinal FROM messages x WHERE x.chat_id = c.id AND "                    \
  "   x.id <= m.last_read_message_id ORDER BY x.id DESC LIMIT 1), 0)"                            \
  " - (SELECT count(*) FROM messages d WHERE d.chat_id = c.id AND d.is_deleted AND "             \
  "   d.id > m.last_read_message_id)"                                                            \
  " - (SELECT count(*) FROM hidden_messages h JOIN messages x ON x.id = h.message_id WHERE "     \
  "   h.user_id = m.user_id AND h.chat_id = c.id AND h.message_id > m.last_read_message_id AND " \
  "   NOT x.is_deleted)"
#define UNREAD_OF_MEMBER \
  "SELECT " UNREAD_COUNT \
  " FROM chats c JOIN chat_members m ON m.chat_id = c.id WHERE c.id = $1 AND m.user_id = $2"
constexpr const char* kUnread = UNREAD_OF_MEMBER;
#undef UNREAD_OF_MEMBER
// The newest seq of the event log, then (chat id, count) for each chat of an array that
// user $1 is a member of (the seq's row alone when none). One statement, one snapshot: seqs
// are taken under a row lock held through COMMIT, so the events this snapshot sees are
// exactly those up to the seq it reads.
constexpr const char* kUnreadsAt =
    "SELECT s.last_seq, u.id, u.count FROM event_log_state s LEFT JOIN LATERAL (SELECT "
    "c.id, " UNREAD_COUNT
    " AS count FROM chats c JOIN chat_members m ON m.chat_id = c.id "
    "WHERE m.user_id = $1 AND c.id = ANY($2::bigint[])) u ON true WHERE s.id = 1";
// Every chat of a user with its read watermark and unread count (kUnread for each).
#define READ_STATES                                    \
  "SELECT c.id, m.last_read_message_id, " UNREAD_COUNT \
  " FROM chats c JOIN chat_members m ON m.chat_id = c.id WHERE m.user_id = $1"
constexpr const char* kReadStates = READ_STATES;
constexpr const char* kReadStateOfChat = READ_STATES " AND c.id = $2";
#undef READ_STATES
#undef UNREAD_COUNT
// The two lowest of a watermark in each chat of an array (one chat, or a batch's): rows of
// (chat id, user id, value), each chat's in order.
#define LOWEST_OF_CHATS(column)                                                                  \
  "SELECT c.id, w.user_id, w.value FROM unnest($1::bigint[]) AS c(id) CROSS JOIN LATERAL "       \
  "(SELECT user_id, " column " AS value FROM chat_members WHERE chat_id = c.id ORDER BY " column \
  " LIMIT 2) w ORDER BY c.id, w.value"
constexpr const char* kLowestRead = LOWEST_OF_CHATS("last_read_message_id");
constexpr const char* kLowestDelivered = LOWEST_OF_CHATS("last_delivered_message_id");
#undef LOWEST_OF_CHATS

// The pinned messages a member sees: not those they hid for themselves.
constexpr const char* kPinnedForViewer =
    "SELECT p.message_id FROM pins p WHERE p.chat_id = $1 AND " NOT_HIDDEN_FOR(
        "$2", "p.chat_id", "p.message_id") " ORDER BY p.id";
constexpr const char* kPinsOfChat =
    "SELECT id, chat_id, message_id, pinned_by, pinned_at FROM pins WHERE chat_id = $1 ORDER BY id";
constexpr const char* kPinById =
    "SELECT id, chat_id, message_id, pinned_by, pinned_at FROM pins WHERE id = $1";
constexpr const char* kPinByMessage =
    "SELECT id, chat_id, message_id, pinned_by, pinned_at FROM pins WHERE chat_id = $1 AND "
    "message_id = $2";
constexpr const char* kInsertPin =
    "INSERT INTO pins(chat_id, message_id, pinned_by, pinned_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT DO NOTHING";
constexpr const char* kDeletePin = "DELETE FROM pins WHERE id = $1";
constexpr const char* kUnpinMessage =
    "DELETE FROM pins WHERE chat_id = $1 AND message_id = $2 "
    "RETURNING id, chat_id, message_id, pinned_by, pinned_at";
// Locked, so a deletion in progress is waited for and then seen.
constexpr const char* kLockLiveMessage =
    "SELECT 1 FROM messages WHERE id = $1 AND chat_id = $2 AND NOT is_deleted FOR SHARE";

#define EVENT_COLUMNS "e.seq, e.chat_id, e.user_id, e.type, e.payload, e.created_at"
// A replay walks the user's own chats through events(chat_id, seq), each cut at the page
// size, and the events meant for them through events(user_id, seq): its cost follows what
// they missed, not how busy the rest of the deployment was. The message and edit events
// of messages the user hid for themselves are left out: gone for them everywhere. Of the
// events meant for the user alone, those of a chat they are no longer in are left out but
// for the one that ended it, and those of a chat they are in start when they joined.
constexpr const char* kReplay =
    "SELECT * FROM (SELECT " EVENT_COLUMNS
    " FROM events e WHERE e.user_id = $1 AND e.seq > $2 AND (e.type IN ('member_removed', "
    "'chat_deleted') OR EXISTS (SELECT 1 FROM chat_members m WHERE m.chat_id = e.chat_id AND "
    "m.user_id = $1 AND m.joined_seq < e.seq)) ORDER BY e.seq LIMIT $3) mine "
    "UNION ALL SELECT x.* FROM chat_members m CROSS JOIN LATERAL (SELECT " EVENT_COLUMNS
    " FROM events e WHERE e.chat_id = m.chat_id AND e.user_id IS NULL AND "
    "e.seq > GREATEST($2, m.joined_seq) AND (e.message_id IS NULL OR " NOT_HIDDEN_FOR(
        "$1", "e.chat_id", "e.message_id") ") ORDER BY e.seq LIMIT $3) x WHERE m.user_id = $1 "
    "ORDER BY 1 LIMIT $3";
constexpr const char* kEventsSince =
    "SELECT " EVENT_COLUMNS
    " FROM events e WHERE e.seq > $1 AND (e.chat_id = ANY($2::bigint[]) OR "
    "e.user_id = ANY($3::bigint[]) OR e.chat_id IN (SELECT chat_id FROM chat_members WHERE "
    "user_id = ANY($3::bigint[]))) ORDER BY e.seq LIMIT $4";
#undef EVENT_COLUMNS
constexpr const char* kHidersOfEvents = CHAT_SQL_HIDERS_OF_EVENTS("(SELECT unnest($1::bigint[]))");
constexpr const char* kLogState =
    "SELECT pruned_through, last_seq FROM event_log_state WHERE id = 1";
// The event log's lock, held from taking seqs until the broker has the events (see write()).
constexpr const char* kLockLog = "SELECT pg_advisory_lock(7316002)";
constexpr const char* kLockTimeout = "SELECT set_config('lock_timeout', '10s', true)";
constexpr const char* kUnlockLog = "SELECT pg_advisory_unlock(7316002)";
// Takes the next $1 seqs and writes all the events of a transaction with them, in the
// order of the arrays; answers the newest seq taken.
constexpr const char* kAppendEvents =
    "WITH taken AS (UPDATE event_log_state SET last_seq = last_seq + $1 WHERE id = 1 "
    "RETURNING last_seq), written AS (INSERT INTO events(seq, chat_id, user_id, type, payload, "
    "created_at, message_id) SELECT taken.last_seq - $1 + x.n, x.c, x.u, x.t, x.p, x.at, x.m "
    "FROM taken, unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], "
    "$7::bigint[]) WITH ORDINALITY AS x(c, u, t, p, at, m, n)) SELECT last_seq FROM taken";
// After kAppendEvents, under the log's lock, in the same transaction: the seq before the
// transaction's first event ($3 events). kInsertMembers read the newest seq when the row
// was written, and writes that committed between that read and this one took seqs above
// it: the new member's replay gave them events from before their joining (receipts, pins,
// edits) that their live socket never had.
constexpr const char* kStampJoinedSeq =
    "UPDATE chat_members SET joined_seq = (SELECT last_seq FROM event_log_state WHERE id = 1) - "
    "$3 WHERE chat_id = $1 AND user_id = $2";
// A message's logged events (NewEvent::message_id) are found among its chat's events from
// its time on, through events(chat_id, seq), starting at the first event logged an hour
// before it (a margin for clocks): no index of their own, which every send would write,
// while this scan runs only for an edit or a deletion and reads the chat's events since
// the message.
constexpr const char* kLoggedForMessage =
    "SELECT seq, payload, type FROM events WHERE chat_id = $1 AND message_id = $2 AND seq >= "
    "COALESCE((SELECT seq FROM events WHERE created_at >= $3 ORDER BY created_at LIMIT 1), "
    "(SELECT COALESCE(max(seq), 0) + 1 FROM events))";
constexpr const char* kRelogPayloads =
    "UPDATE events e SET payload = x.p FROM unnest($1::bigint[], $2::text[]) AS x(s, p) "
    "WHERE e.seq = x.s";
constexpr const char* kDropLoggedEvents = "DELETE FROM events WHERE seq = ANY($1::bigint[])";
// The messages whose copies chat events carry (CopiesInLog).
constexpr const char* kCopiedMessages = "SELECT " CHAT_SQL_MESSAGE_COLUMNS
                                        " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
                                        "WHERE m.id = ANY($1::bigint[])";
constexpr const char* kCommit = "COMMIT";
constexpr const char* kPruneEventsUpTo =
    "SELECT COALESCE(max(seq), 0) FROM events WHERE created_at < $1";
constexpr const char* kDeleteEventsUpTo = "DELETE FROM events WHERE seq <= $1";
constexpr const char* kSetPrunedThrough =
    "UPDATE event_log_state SET pruned_through = GREATEST(pruned_through, $1) WHERE id = 1";

constexpr const char* kFindPrivate = "SELECT id FROM chats WHERE private_key = $1";
// A pair's second concurrent creation waits on the unique private_key, then finds nothing
// inserted and reads the first one's chat.
constexpr const char* kInsertChat =
    "INSERT INTO chats(type, name, private_key, created_at, last_activity_at) VALUES ($1, $2, $3, "
    "$4, $4) ON CONFLICT DO NOTHING RETURNING id";
// Members (arrays of ids and roles) in one statement: a group of 10,000 was 10,000 round
// trips. The chat row is share locked: a deletion of the chat in progress is waited for,
// and the chat is then found gone (nothing inserted) instead of failing the foreign key;
// so is a rename in progress, whose event names the members (renamed_view).
constexpr const char* kInsertMembers =
    "INSERT INTO chat_members(chat_id, user_id, role, joined_at, joined_seq, last_read_message_id, "
    "last_delivered_message_id) SELECT $1::bigint, m.user_id, m.role, $4::bigint, (SELECT "
    "last_seq FROM event_log_state WHERE id = 1), c.last_message_id, c.last_message_id "
    "FROM chats c, unnest($2::bigint[], $3::text[]) AS m(user_id, role) WHERE c.id = $1 "
    "FOR SHARE OF c ON CONFLICT DO NOTHING";
constexpr const char* kRenameChat = "UPDATE chats SET name = $2 WHERE id = $1";
constexpr const char* kDeleteChatHidden = "DELETE FROM hidden_messages WHERE chat_id = $1";
constexpr const char* kDeleteChatEvents =
    "DELETE FROM events WHERE chat_id = $1 AND user_id IS NULL";
constexpr const char* kDeleteChat = "DELETE FROM chats WHERE id = $1";
constexpr const char* kSetRole =
    "UPDATE chat_members SET role = $3 WHERE chat_id = $1 AND user_id = $2";
// $1 chat, $2 member, $3 their role now, $4 the new one, $5 actor, $6 the actor's role.
constexpr const char* kSetRoleIfUnchanged =
    "UPDATE chat_members SET role = $4 WHERE chat_id = $1 AND user_id = $2 AND role = $3 "
    "AND EXISTS (SELECT 1 FROM chat_members a WHERE a.chat_id = $1 AND a.user_id = $5 "
    "AND a.role = $6)";
constexpr const char* kShareChat = "SELECT id FROM chats WHERE id = $1 FOR SHARE";
// Standings (store::Standing). Every change that can take a standing away (a role change,
// a departure or removal, the chat's deletion) takes the chat row FOR UPDATE (kLockChat),
// which waits for every other lock on the row and holds off every other. (An addition takes
// FOR SHARE: it takes nobody's standing away.) A write under a standing locks the row first,
// at least FOR KEY SHARE, then reads the standing: the statement sees every such change
// committed before, and none can commit before the write does. Send batches lock their
// chats FOR UPDATE too, so edits and deletions for everyone take turns with them.
constexpr const char* kKeyShareChat = "SELECT id FROM chats WHERE id = $1 FOR KEY SHARE";
// A rename updates the row: taken at that strength at once, as a lock raised later could
// wait for a role change that waits for this write. An addition takes it too: both write
// events that name the chat's members and pins, so each waits for the writes that change
// them (FOR SHARE: additions, pins, unpins, deletions for everyone).
constexpr const char* kLockChatForChange = "SELECT id FROM chats WHERE id = $1 FOR NO KEY UPDATE";
constexpr const char* kStands =
    "SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2 AND role = $3";
constexpr const char* kIsMember = "SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2";
constexpr const char* kRemoveMember =
    "DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2";
constexpr const char* kLockMemberRows =
    "SELECT user_id FROM chat_members WHERE chat_id = $1 AND user_id = ANY($2::bigint[]) "
    "ORDER BY user_id FOR UPDATE";

// A batch of sends (arrays, one element per send): the columns of each message
// (CHAT_SQL_MESSAGE_COLUMNS), whether it was stored now, and its element's index from 1.
constexpr const char* kSendMessages =
    "SELECT * FROM chat_send_messages($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], "
    "$5::bigint[], $6::text[], $7::text[])";
constexpr const char* kLockBatchChats =
    "SELECT id FROM chats WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE";
constexpr const char* kLockSenderRows =
    "SELECT m.user_id FROM chat_members m JOIN (SELECT DISTINCT * FROM unnest($1::bigint[], "
    "$2::bigint[]) AS x(chat_id, user_id)) x ON m.chat_id = x.chat_id AND m.user_id = x.user_id "
    "ORDER BY m.chat_id, m.user_id FOR NO KEY UPDATE OF m";
// The originals of forwards, locked: a deletion or an edit in progress is waited for, and
// the forward then copies what it left.
constexpr const char* kLockOriginals =
    "SELECT id, text FROM messages WHERE id = ANY($1::bigint[]) AND NOT is_deleted "
    "ORDER BY id FOR SHARE";
// edited_at only grows, by a microsecond at least: of two edits racing, the one committed
// last may have read the clock first, and clients tell a newer version of a message by it
// (a tie would leave the older text in place of the newer).
constexpr const char* kEditMessage =
    "UPDATE messages SET text = $2, "
    "edited_at = GREATEST($3, COALESCE(edited_at, created_at) + 1), "
    "search = to_tsvector('simple', $4) WHERE id = $1 AND NOT is_deleted";
constexpr const char* kDeleteMessage =
    "UPDATE messages SET text = '', is_deleted = TRUE, search = ''::tsvector "
    "WHERE id = $1 AND NOT is_deleted";
constexpr const char* kIsHidden =
    "SELECT 1 FROM hidden_messages WHERE user_id = $1 AND chat_id = $2 AND message_id = $3";
constexpr const char* kHideMessage =
    "INSERT INTO hidden_messages(user_id, chat_id, message_id) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING";
// The members who hid the chat's message $2 or one of its pinned messages, by id.
constexpr const char* kHidersOfShown =
    "SELECT DISTINCT m.user_id FROM chat_members m JOIN hidden_messages h ON h.user_id = "
    "m.user_id AND h.chat_id = m.chat_id WHERE m.chat_id = $1 AND (h.message_id = $2 OR "
    "h.message_id IN (SELECT p.message_id FROM pins p WHERE p.chat_id = $1)) ORDER BY m.user_id";
// Through hidden_messages(chat_id, message_id): a lookup for the hiders alone (it went
// through the chat's members, a lookup each, before that index).
constexpr const char* kHiddenBy =
    "SELECT user_id FROM hidden_messages WHERE chat_id = $1 AND message_id = $2";

// The newest message of the chat at or below a value: watermarks only ever name messages.
constexpr const char* kClampToMessage =
    "SELECT COALESCE(max(id), 0) FROM messages WHERE chat_id = $1 AND id <= $2";
constexpr const char* kRaiseRead =
    "UPDATE chat_members SET last_read_message_id = $3, "
    "last_delivered_message_id = GREATEST(last_delivered_message_id, $3) "
    "WHERE chat_id = $1 AND user_id = $2 AND last_read_message_id < $3";
constexpr const char* kReadWatermark =
    "SELECT last_read_message_id FROM chat_members WHERE chat_id = $1 AND user_id = $2";
// Delivered watermarks of many members of many chats ($1 chats, $2 users, $3 values), set
// by set. Batches of a large chat take turns (its lowest watermark before and after must
// not interleave with another batch's, or a rise both made goes unseen). The rows are
// locked next, in one order on every node, so two batches that share rows cannot deadlock;
// then the chats' sizes and lowest watermarks, the raise (each value clamped to its chat's
// newest message at or below it), and the lowest watermarks again.
constexpr const char* kTakeTurnsInLargeChats =
    "SELECT pg_advisory_xact_lock(7316003, (c.chat_id % 2147483647)::int) FROM (SELECT chat_id "
    "FROM chat_members WHERE chat_id = ANY($1::bigint[]) GROUP BY chat_id HAVING count(*) > $2 "
    "ORDER BY chat_id) c";
constexpr const char* kLockDeliveredRows =
    "SELECT m.user_id FROM chat_members m JOIN unnest($1::bigint[], $2::bigint[]) AS "
    "x(chat_id, user_id) ON m.chat_id = x.chat_id AND m.user_id = x.user_id "
    "ORDER BY m.chat_id, m.user_id FOR UPDATE OF m";
constexpr const char* kDeliveredTotals =
    "SELECT chat_id, count(*), COALESCE(min(last_delivered_message_id), 0) FROM chat_members "
    "WHERE chat_id = ANY($1::bigint[]) GROUP BY chat_id";
constexpr const char* kRaiseDeliveredMany =
    "UPDATE chat_members m SET last_delivered_message_id = t.target FROM (SELECT x.chat_id, "
    "x.user_id, (SELECT COALESCE(max(g.id), 0) FROM messages g WHERE g.chat_id = x.chat_id "
    "AND g.id <= x.value) AS target FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS "
    "x(chat_id, user_id, value)) t WHERE m.chat_id = t.chat_id AND m.user_id = t.user_id AND "
    "m.last_delivered_message_id < t.target "
    "RETURNING m.chat_id, m.user_id, m.last_delivered_message_id";

#undef NOT_HIDDEN
#undef NOT_HIDDEN_FOR

// ---- row readers -------------------------------------------------------------------------

PinRecord read_pin(const PgResult& r, int i) {
  return {r.int64(i, 0), r.int64(i, 1), r.int64(i, 2), r.int64(i, 3), r.int64(i, 4)};
}

EventRecord read_event(const PgResult& r, int i) {
  EventRecord e;
  e.seq = r.int64(i, 0);
  e.chat_id = r.int64(i, 1);
  e.user_id = optional_int64(r, i, 2);
  e.type = r.text(i, 3);
  e.payload = r.text(i, 4);
  e.created_at = r.int64(i, 5);
  return e;
}

std::int64_t scalar(const PgResult& r) {
  return r.rows() > 0 && !r.is_null(0, 0) ? r.int64(0, 0) : 0;
}

// The newest seq, from kLogState.
std::int64_t last_seq_of(const PgResult& state) {
  return state.rows() > 0 ? state.int64(0, 1) : 0;
}

// The words of a message as the search index holds them: runs of letters and digits,
// lower-cased by the server's own Unicode tables (chat/search_query cuts the user's query
// the same way) and without accents ("crème" -> "creme"), like SQLite's unicode61, so
// matching does not depend on the database's locale.
std::string search_words(std::string_view text) {
  std::string out;
  for (const auto& word : unicode::words(text)) {
    if (!out.empty()) out += ' ';
    out += unicode::without_diacritics(unicode::to_lower(unicode::encode(word)));
  }
  return out;
}

// ---- reusable steps (inside a transaction or on their own) -----------------------------

asio::awaitable<std::optional<ChatRecord>> chat_by_id(PgConnection& c, std::int64_t id) {
  auto params = pg_params(id);
  auto r = co_await c.prepared(kChatById, std::move(params));
  co_return first_row(r, read_chat);
}

// Locks the chat row with `lock` (kLockChat and the like), then reads whether `by` holds
// (see kStands): false when it does not, or the chat is gone.
asio::awaitable<bool> stands(PgConnection& c, const Standing& by, const char* lock) {
  auto chat = pg_params(by.chat_id);
  auto locked = co_await c.prepared(lock, std::move(chat));
  if (locked.rows() == 0) co_return false;
  if (!by.role) {
    auto member = pg_params(by.chat_id, by.user_id);
    auto found = co_await c.prepared(kIsMember, std::move(member));
    co_return found.rows() > 0;
  }
  auto standing = pg_params(by.chat_id, by.user_id, role_name(*by.role));
  auto found = co_await c.prepared(kStands, std::move(standing));
  co_return found.rows() > 0;
}

asio::awaitable<std::vector<MemberRecord>> members_of(PgConnection& c, std::int64_t chat_id) {
  auto params = pg_params(chat_id);
  auto r = co_await c.prepared(kMembers, std::move(params));
  co_return all_rows<MemberRecord>(r, read_member);
}

asio::awaitable<std::optional<MessageRecord>> message_by_id(PgConnection& c, std::int64_t id) {
  auto params = pg_params(id);
  auto r = co_await c.prepared(kMessageById, std::move(params));
  co_return first_row(r, read_message);
}

// A chat's summary takes five reads. They go out in one pipeline (one round trip, where
// five took about 0.5 ms a chat on loopback), and a list's chats in pipelines of
// kSummariesPerTrip.
constexpr std::size_t kSummaryReads = 5;
constexpr std::size_t kSummariesPerTrip = 64;

// `locked`: the last message is read FOR SHARE (a write transaction's read, summary_of).
void add_summary_reads(std::vector<PgStatement>& out, std::int64_t chat_id, std::int64_t viewer,
                       bool locked = false) {
  out.push_back({kChatById, pg_params(chat_id)});
  out.push_back({kMembers, pg_params(chat_id)});
  out.push_back(
      {locked ? kLastVisibleMessageShared : kLastVisibleMessage, pg_params(chat_id, viewer)});
  out.push_back({kUnread, pg_params(chat_id, viewer)});
  out.push_back({kPinnedForViewer, pg_params(chat_id, viewer)});
}

// The summary from the results of add_summary_reads, which start at `r`.
std::optional<ChatSummary> summary_from(const PgResult* r, std::int64_t viewer) {
  auto chat = first_row(r[0], read_chat);
  if (!chat) return std::nullopt;
  ChatSummary out;
  out.chat = std::move(*chat);
  out.members = all_rows<MemberRecord>(r[1], read_member);
  auto me = std::find_if(out.members.begin(), out.members.end(),
                         [&](const MemberRecord& m) { return m.user_id == viewer; });
  if (me == out.members.end()) return std::nullopt;
  out.last_read_message_id = me->last_read_message_id;
  out.last_message = first_row(r[2], read_message);
  out.unread_count = std::max<std::int64_t>(0, scalar(r[3]));
  for (int i = 0; i < r[4].rows(); ++i) out.pinned_message_ids.push_back(r[4].int64(i, 0));
  return out;
}

asio::awaitable<std::optional<ChatSummary>> summary_of(PgConnection& c, std::int64_t chat_id,
                                                       std::int64_t viewer, bool locked = false) {
  std::vector<PgStatement> reads;
  add_summary_reads(reads, chat_id, viewer, locked);
  auto r = co_await c.pipeline(std::move(reads));
  co_return summary_from(r.data(), viewer);
}

// The renamed chat as its event shows it (RenamedChat), in the rename's transaction: the
// chat, its members, its newest message and pins in one round trip; the members who hid
// that message, and the newest each still sees, only when there is such a message.
asio::awaitable<RenamedChat> renamed_view(PgConnection& c, ChatRecord chat) {
  RenamedChat out;
  ChatSummary& shared = out.shared;
  const std::int64_t chat_id = chat.id;
  shared.chat = std::move(chat);
  std::vector<PgStatement> reads;
  reads.push_back({kMembers, pg_params(chat_id)});
  reads.push_back({kNewestMessageShared, pg_params(chat_id)});
  reads.push_back({kPinnedForViewer, pg_params(chat_id, std::int64_t{0})});
  auto r = co_await c.pipeline(std::move(reads));
  shared.members = all_rows<MemberRecord>(r[0], read_member);
  shared.last_message = first_row(r[1], read_message);
  for (int i = 0; i < r[2].rows(); ++i) shared.pinned_message_ids.push_back(r[2].int64(i, 0));
  const std::int64_t newest = shared.last_message ? shared.last_message->id : 0;
  auto params = pg_params(chat_id, newest);
  auto hiders = co_await c.prepared(kHidersOfShown, std::move(params));
  if (hiders.rows() == 0) co_return out;
  // What each of them sees instead: two reads each, in one round trip.
  std::vector<PgStatement> seen;
  seen.reserve(2 * static_cast<std::size_t>(hiders.rows()));
  for (int i = 0; i < hiders.rows(); ++i) {
    seen.push_back({kLastVisibleMessageShared, pg_params(chat_id, hiders.int64(i, 0))});
    seen.push_back({kPinnedForViewer, pg_params(chat_id, hiders.int64(i, 0))});
  }
  auto r2 = co_await c.pipeline(std::move(seen));
  for (int i = 0; i < hiders.rows(); ++i) {
    const auto k = 2 * static_cast<std::size_t>(i);
    HiderView view{hiders.int64(i, 0), first_row(r2[k], read_message), {}};
    for (int j = 0; j < r2[k + 1].rows(); ++j)
      view.pinned_message_ids.push_back(r2[k + 1].int64(j, 0));
    out.seen_by_hiders.push_back(std::move(view));
  }
  co_return out;
}

// BEGIN, and the newest seq in the same round trip: every seq this transaction takes is
// above it (see uncertain_ in write()).
asio::awaitable<void> begin_logged(PgConnection& c, TxLog& log) {
  std::vector<PgStatement> begin;
  begin.push_back({"BEGIN", {}});
  begin.push_back({kLogState, {}});
  auto r = co_await c.pipeline(std::move(begin));
  log.seq_floor = last_seq_of(r.back());
}

// COMMIT, preceded in the same round trip by the event-log lock, the seqs and the events
// when there are any. Seqs come from one counter whose row stays locked until COMMIT, so
// they are gapless and in commit order; the advisory lock is held on until the broker has
// the events (write()). Taking both locks last of all the locks a write takes, and only
// here, keeps them out of any deadlock and as short as a COMMIT and a publish: no round
// trip to chatd runs while they are held before COMMIT.
asio::awaitable<void> commit_logged(PgConnection& c, TxLog& log) {
  if (log.pending.empty()) {
    co_await c.query(kCommit);
    co_return;
  }
  const auto n = static_cast<std::int64_t>(log.pending.size());
  std::vector<std::int64_t> chats;
  std::vector<std::optional<std::int64_t>> users, messages;
  std::vector<std::string> types, payloads;
  for (const auto& e : log.pending) {
    chats.push_back(e.chat_id);
    users.push_back(e.user_id);
    types.push_back(e.type);
    // Copies of messages are logged without their text (logged_text.hpp); sent with it.
    payloads.push_back(carries_message_copies(e.type) ? without_copy_texts(e.payload) : e.payload);
    messages.push_back(e.message_id);
  }
  std::vector<PgStatement> commit;
  // A node that died holding the lock is cut off by the server's keepalive; until then
  // writers give up after the timeout (503) instead of queueing for ever.
  commit.push_back({kLockTimeout, {}});
  commit.push_back({kLockLog, {}});
  commit.push_back(
      {kAppendEvents,
       pg_params(n, array_literal(chats), array_literal(users), array_literal(types),
                 array_literal(payloads), array_literal(log.pending_at), array_literal(messages))});
  // The members who hid an event's message, read under the log's lock: every write logged
  // before this one has committed, so a hide just before the event is seen (READ
  // COMMITTED: each statement sees what committed before it began).
  std::vector<std::size_t> hiders_at(log.pending.size(), 0);
  for (std::size_t i = 0; i < log.pending.size(); ++i) {
    const auto& e = log.pending[i];
    if (!skips_hiders(e.type, e.user_id) || !e.message_id) continue;
    hiders_at[i] = commit.size();
    commit.push_back({kHiddenBy, pg_params(e.chat_id, *e.message_id)});
  }
  for (const auto& [chat_id, user_id] : log.joined) {
    commit.push_back({kStampJoinedSeq, pg_params(chat_id, user_id, n)});
  }
  commit.push_back({kCommit, {}});
  log.locked = true;  // from here on it may be held, even if a statement fails
  auto r = co_await c.pipeline(std::move(commit));
  std::int64_t seq = scalar(r[2]) - n;
  for (std::size_t i = 0; i < log.pending.size(); ++i) {
    auto& e = log.pending[i];
    std::vector<std::int64_t> hidden_from;
    if (hiders_at[i] != 0) {
      const auto& hiders = r[hiders_at[i]];
      for (int row = 0; row < hiders.rows(); ++row) hidden_from.push_back(hiders.int64(row, 0));
    }
    log.events.push_back({++seq, e.chat_id, e.user_id, std::move(e.type), std::move(e.payload),
                          log.pending_at[i], std::move(hidden_from)});
  }
}

// What the log holds of message `m`, brought in line with its text as it now is, before
// the edit or delete event that is about to follow (NewEvent::message_id): its message
// event rewritten, its earlier edit events dropped (the new event supersedes them, and a
// rewrite of every one of them made each edit cost more than the last). Seqs may skip.
asio::awaitable<void> relog_text(PgConnection& c, const MessageRecord& m) {
  constexpr Micros kClockMargin = 3'600'000'000;  // an hour
  auto params = pg_params(m.chat_id, m.id, m.created_at - kClockMargin);
  auto logged = co_await c.prepared(kLoggedForMessage, std::move(params));
  std::vector<std::int64_t> seqs;
  std::vector<std::string> payloads;
  std::vector<std::int64_t> superseded;
  for (int i = 0; i < logged.rows(); ++i) {
    const std::string_view type = logged.text(i, 2);
    if (type == "edit") {
      superseded.push_back(logged.int64(i, 0));
    } else if (type == "message") {  // pins name the message too, without its text
      seqs.push_back(logged.int64(i, 0));
      payloads.push_back(with_logged_text(logged.text(i, 1), m.text));
    }
  }
  if (!seqs.empty()) {
    auto update = pg_params(array_literal(seqs), array_literal(payloads));
    co_await c.prepared(kRelogPayloads, std::move(update));
  }
  if (!superseded.empty()) {
    auto drop = pg_params(array_literal(superseded));
    co_await c.prepared(kDropLoggedEvents, std::move(drop));
  }
}

asio::awaitable<std::int64_t> clamp_to_message(PgConnection& c, std::int64_t chat_id,
                                               std::int64_t value) {
  auto params = pg_params(chat_id, value);
  auto r = co_await c.prepared(kClampToMessage, std::move(params));
  co_return scalar(r);
}

// Moves a read watermark up (delivered watermarks move by mark_delivered_many).
asio::awaitable<WatermarkChange> raise_read_watermark(PgConnection& c, TxLog& log,
                                                      std::int64_t chat_id, std::int64_t user_id,
                                                      std::int64_t value,
                                                      const EventsFor<WatermarkChange>& events) {
  WatermarkChange change{chat_id, user_id, 0, false};
  const std::int64_t target = co_await clamp_to_message(c, chat_id, value);
  auto raise = pg_params(chat_id, user_id, target);
  auto raised = co_await c.prepared(kRaiseRead, std::move(raise));
  change.changed = raised.affected() == 1;
  auto read = pg_params(chat_id, user_id);
  auto current = co_await c.prepared(kReadWatermark, std::move(read));
  change.value = scalar(current);
  if (change.changed) log.append(events(change), now_micros());
  co_return change;
}

// A chat with its members, messages and pins, and its events for all its members: nobody
// replays those any more (they are replayed to the chat's members), and the messages'
// words go from the log with the messages. Events for one user (their removal, a deletion
// for them) stay, and so do the chat_deleted events logged at the commit.
//
// The events go last. The chat's deletion cascades to its messages, so it waits for every
// edit or deletion in flight, which lock a message and then its events; deleting the
// events first took the opposite order, and the two deadlocked (until PostgreSQL's
// deadlock timeout, 1 s). Deleted after, their events, committed by then, go too.
asio::awaitable<void> delete_chat_rows(PgConnection& c, std::int64_t chat_id) {
  auto hidden = pg_params(chat_id);
  co_await c.prepared(kDeleteChatHidden, std::move(hidden));
  auto chat = pg_params(chat_id);
  co_await c.prepared(kDeleteChat, std::move(chat));
  auto events = pg_params(chat_id);
  co_await c.prepared(kDeleteChatEvents, std::move(events));
}

// Each chat's two lowest read and delivered watermarks (kLowestRead, kLowestDelivered); a
// chat without members has none.
std::map<std::int64_t, Watermarks> watermarks_of_chats(const PgResult& read,
                                                       const PgResult& delivered) {
  std::map<std::int64_t, Watermarks> out;
  for (int i = 0; i < read.rows(); ++i)
    out[read.int64(i, 0)].lowest_read.push_back({read.int64(i, 1), read.int64(i, 2)});
  for (int i = 0; i < delivered.rows(); ++i)
    out[delivered.int64(i, 0)].lowest_delivered.push_back(
        {delivered.int64(i, 1), delivered.int64(i, 2)});
  return out;
}

}  // namespace

// ---- the write path ------------------------------------------------------------------------

// BEGIN, the body, then the event-log lock, the events and COMMIT in one round trip; then,
// still holding the event-log lock, the listener hears the committed events and the barrier
// waits until the broker has passed them on. Only then may the next transaction take seqs:
// every node hears events in commit order, so a reader's `since` cursor never passes an
// event it has not been sent.
asio::awaitable<void> PgChatStore::write(WriteBody body) {
  for (int attempt = 1;; ++attempt) {
    auto lease = co_await db_.pool().acquire();
    TxLog log;
    const PgDatabase::Body open = [&log](PgConnection& c) { return begin_logged(c, log); };
    const PgDatabase::Body with_log = [&body, &log](PgConnection& c) { return body(c, log); };
    const PgDatabase::Body close = [&log](PgConnection& c) { return commit_logged(c, log); };
    auto result = co_await attempt_transaction(*lease, open, with_log, close);
    const bool committed = result.committed;
    // No answer to the COMMIT: its events, if it committed, have seqs above the floor.
    if (!committed && result.commit_sent && !lease->healthy() && !log.pending.empty() &&
        uncertain_) {
      uncertain_(log.seq_floor + 1);
    }
    if (committed && !log.events.empty()) {
      // Whatever happens here, the lock below is released.
      try {
        if (listener_) listener_(log.events);
      } catch (const std::exception& e) {
        spdlog::error("commit listener failed: {}", e.what());
      }
      if (barrier_) co_await barrier_();
    }
    if (log.locked && lease->healthy()) {
      try {
        co_await lease->query(kUnlockLog);
      } catch (const std::exception&) {
        // Losing the connection releases the lock too.
      }
    }
    if (committed) co_return;
    if (!result.retryable || attempt >= kTransactionAttempts) give_up(result);
  }
}

// ---- reads -------------------------------------------------------------------------------

asio::awaitable<std::optional<std::int64_t>> PgChatStore::find_private_chat(std::int64_t a,
                                                                            std::int64_t b) {
  auto params = pg_params(private_chat_key(a, b));
  auto r = co_await db_.query(kFindPrivate, std::move(params));
  if (r.rows() == 0) co_return std::nullopt;
  co_return r.int64(0, 0);
}

asio::awaitable<std::optional<ChatRecord>> PgChatStore::find_chat(std::int64_t chat_id) {
  auto params = pg_params(chat_id);
  auto r = co_await db_.query(kChatById, std::move(params));
  co_return first_row(r, read_chat);
}

asio::awaitable<std::optional<MemberRecord>> PgChatStore::find_member(std::int64_t chat_id,
                                                                      std::int64_t user_id) {
  auto params = pg_params(chat_id, user_id);
  auto r = co_await db_.query(kMember, std::move(params));
  co_return first_row(r, read_member);
}

asio::awaitable<std::vector<MemberRecord>> PgChatStore::members(std::int64_t chat_id) {
  auto params = pg_params(chat_id);
  auto r = co_await db_.query(kMembers, std::move(params));
  co_return all_rows<MemberRecord>(r, read_member);
}

asio::awaitable<std::vector<std::int64_t>> PgChatStore::chat_ids_of(std::int64_t user_id) {
  auto params = pg_params(user_id);
  auto r = co_await db_.query(kChatIdsOfUser, std::move(params));
  co_return all_rows<std::int64_t>(r, [](const PgResult& x, int i) { return x.int64(i, 0); });
}

asio::awaitable<std::vector<ChatSummary>> PgChatStore::summaries(std::int64_t viewer) {
  std::vector<ChatSummary> out;
  auto body = [&](PgConnection& c) -> asio::awaitable<void> {
    out.clear();
    auto params = pg_params(viewer);
    auto ids = co_await c.prepared(kMyChatsByActivity, std::move(params));
    const auto count = static_cast<std::size_t>(ids.rows());
    for (std::size_t first = 0; first < count; first += kSummariesPerTrip) {
      const std::size_t end = std::min(count, first + kSummariesPerTrip);
      std::vector<PgStatement> reads;
      reads.reserve((end - first) * kSummaryReads);
      for (std::size_t i = first; i < end; ++i) {
        add_summary_reads(reads, ids.int64(static_cast<int>(i), 0), viewer);
      }
      auto r = co_await c.pipeline(std::move(reads));
      for (std::size_t k = 0; k + kSummaryReads <= r.size(); k += kSummaryReads) {
        auto summary = summary_from(r.data() + k, viewer);
        if (summary) out.push_back(std::move(*summary));
      }
    }
  };
  // One snapshot for the whole list, so counts and last messages agree with each other.
  PgDatabase::Body fn = body;
  co_await db_.transaction(std::move(fn), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  co_return out;
}

asio::awaitable<std::optional<ChatSummary>> PgChatStore::summary(std::int64_t chat_id,
                                                                 std::int64_t viewer) {
  std::optional<ChatSummary> out;
  auto body = [&](PgConnection& c) -> asio::awaitable<void> {
    out = co_await summary_of(c, chat_id, viewer);
  };
  PgDatabase::Body fn = body;
  co_await db_.transaction(std::move(fn), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  co_return out;
}

asio::awaitable<std::vector<MemberView>> PgChatStore::member_views(
    std::int64_t viewer, std::vector<std::int64_t> chat_ids) {
  std::vector<MemberView> out;
  if (chat_ids.empty()) co_return out;
  constexpr std::size_t kReadsPerChat = 4;
  auto body = [&](PgConnection& c) -> asio::awaitable<void> {
    out.clear();
    // Every chat's reads, and the watermarks of them all: one round trip.
    std::vector<PgStatement> reads;
    reads.reserve(chat_ids.size() * kReadsPerChat + 2);
    for (const std::int64_t chat_id : chat_ids) {
      reads.push_back({kMember, pg_params(chat_id, viewer)});
      reads.push_back({kLastVisibleMessage, pg_params(chat_id, viewer)});
      reads.push_back({kUnread, pg_params(chat_id, viewer)});
      reads.push_back({kPinnedForViewer, pg_params(chat_id, viewer)});
    }
    // Each chat once: the watermark reads give a row per element of their array.
    std::vector<std::int64_t> distinct = chat_ids;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    const std::string chats = array_literal(distinct);
    reads.push_back({kLowestRead, pg_params(chats)});
    reads.push_back({kLowestDelivered, pg_params(chats)});
    auto r = co_await c.pipeline(std::move(reads));
    const std::size_t marks_at = chat_ids.size() * kReadsPerChat;
    auto marks = watermarks_of_chats(r[marks_at], r[marks_at + 1]);
    for (std::size_t i = 0; i < chat_ids.size(); ++i) {
      const PgResult* own = r.data() + i * kReadsPerChat;
      auto me = first_row(own[0], read_member);
      if (!me) continue;
      MemberView& v = out.emplace_back();
      v.chat_id = chat_ids[i];
      v.last_message = first_row(own[1], read_message);
      v.unread_count = std::max<std::int64_t>(0, scalar(own[2]));
      v.last_read_message_id = me->last_read_message_id;
      for (int k = 0; k < own[3].rows(); ++k) v.pinned_message_ids.push_back(own[3].int64(k, 0));
      v.marks = marks[chat_ids[i]];  // a copy: a chat asked for twice gets its marks twice
    }
  };
  PgDatabase::Body fn = body;
  co_await db_.transaction(std::move(fn), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  co_return out;
}

asio::awaitable<UnreadCounts> PgChatStore::unread_counts(std::int64_t viewer,
                                                         std::vector<std::int64_t> chat_ids) {
  auto r = co_await db_.query(kUnreadsAt, pg_params(viewer, array_literal(chat_ids)));
  std::unordered_map<std::int64_t, std::int64_t> found;
  for (int row = 0; row < r.rows(); ++row) {
    if (!r.is_null(row, 1)) found[r.int64(row, 1)] = std::max<std::int64_t>(0, r.int64(row, 2));
  }
  UnreadCounts out;
  out.seq = r.rows() > 0 ? r.int64(0, 0) : 0;
  out.counts.reserve(chat_ids.size());
  for (const std::int64_t chat_id : chat_ids) {
    auto it = found.find(chat_id);
    out.counts.push_back(it == found.end() ? 0 : it->second);
  }
  co_return out;
}

asio::awaitable<Watermarks> PgChatStore::watermarks(std::int64_t chat_id) {
  const std::string chats = array_literal(std::vector<std::int64_t>{chat_id});
  std::vector<PgStatement> reads;
  reads.push_back({kLowestRead, pg_params(chats)});
  reads.push_back({kLowestDelivered, pg_params(chats)});
  auto results = co_await db_.pipeline(std::move(reads));
  co_return watermarks_of_chats(results[0], results[1])[chat_id];
}

asio::awaitable<std::optional<HistoryPage>> PgChatStore::history(std::int64_t chat_id,
                                                                 std::int64_t viewer,
                                                                 std::optional<std::int64_t> before,
                                                                 std::optional<std::int64_t> after,
                                                                 int limit) {
  std::optional<HistoryPage> page;
  const std::int64_t upper = before.value_or(INT64_MAX);
  const std::string chats = array_literal(std::vector<std::int64_t>{chat_id});
  auto body = [&](PgConnection& c) -> asio::awaitable<void> {
    page.reset();
    // The membership, the page and the watermarks: one round trip, one snapshot.
    std::vector<PgStatement> reads;
    reads.push_back({kMember, pg_params(chat_id, viewer)});
    if (after) {
      reads.push_back({kHistoryOldestFirst, pg_params(chat_id, viewer, *after, upper, limit + 1)});
    } else {
      reads.push_back({kHistoryNewestFirst, pg_params(chat_id, viewer, upper, limit + 1)});
    }
    reads.push_back({kLowestRead, pg_params(chats)});
    reads.push_back({kLowestDelivered, pg_params(chats)});
    auto results = co_await c.pipeline(std::move(reads));
    if (results[0].rows() == 0) co_return;
    page.emplace();
    page->viewer = read_member(results[0], 0);
    page->messages = all_rows<MessageRecord>(results[1], read_message);
    if (static_cast<int>(page->messages.size()) > limit) {
      page->has_more = true;
      if (!after) page->visible_below = page->messages.back().id;
      page->messages.pop_back();
    }
    page->marks = watermarks_of_chats(results[2], results[3])[chat_id];
  };
  PgDatabase::Body fn = body;
  co_await db_.transaction(std::move(fn), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  co_return page;
}

asio::awaitable<std::optional<MessageRecord>> PgChatStore::find_message(std::int64_t id) {
  auto params = pg_params(id);
  auto r = co_await db_.query(kMessageById, std::move(params));
  co_return first_row(r, read_message);
}

asio::awaitable<std::optional<MessageRecord>> PgChatStore::find_sent(std::int64_t chat_id,
                                                                     std::int64_t sender_id,
                                                                     std::string client_id) {
  auto params = pg_params(chat_id, sender_id, std::move(client_id));
  auto r = co_await db_.query(kMessageByClientId, std::move(params));
  co_return first_row(r, read_message);
}

asio::awaitable<bool> PgChatStore::is_hidden(std::int64_t user_id, std::int64_t chat_id,
                                             std::int64_t message_id) {
  auto params = pg_params(user_id, chat_id, message_id);
  auto r = co_await db_.query(kIsHidden, std::move(params));
  co_return r.rows() > 0;
}

asio::awaitable<std::vector<MessageRecord>> PgChatStore::search(std::int64_t viewer,
                                                                std::vector<std::string> terms,
                                                                std::optional<std::int64_t> chat_id,
                                                                int limit) {
  auto query = tsquery_prefixes(terms);
  if (!query) co_return std::vector<MessageRecord>{};
  auto params = pg_params(std::move(*query), viewer, chat_id.value_or(0), limit);
  auto r = co_await db_.query(kSearch, std::move(params));
  co_return all_rows<MessageRecord>(r, read_message);
}

asio::awaitable<std::vector<PinRecord>> PgChatStore::pins(std::int64_t chat_id) {
  auto params = pg_params(chat_id);
  auto r = co_await db_.query(kPinsOfChat, std::move(params));
  co_return all_rows<PinRecord>(r, read_pin);
}

asio::awaitable<std::optional<PinRecord>> PgChatStore::find_pin(std::int64_t pin_id) {
  auto params = pg_params(pin_id);
  auto r = co_await db_.query(kPinById, std::move(params));
  co_return first_row(r, read_pin);
}

asio::awaitable<Replay> PgChatStore::replay(std::int64_t user_id, std::int64_t since, int limit) {
  Replay out;
  // One snapshot: the newest seq and the rows agree. Seqs are taken in commit order under
  // the event-log lock, so no event can later appear below a seq this snapshot shows.
  auto body = [&](PgConnection& c) -> asio::awaitable<void> {
    out = Replay{};
    auto state = co_await c.prepared(kLogState);
    const std::int64_t pruned = state.rows() > 0 ? state.int64(0, 0) : 0;
    const std::int64_t newest = last_seq_of(state);
    if (since < pruned) {
      out.resync_required = true;
      out.last_seq = newest;
      co_return;
    }
    auto params = pg_params(user_id, since, limit + 1);
    auto rows = co_await c.prepared(kReplay, std::move(params));
    out.events = all_rows<EventRecord>(rows, read_event);
    if (static_cast<int>(out.events.size()) > limit) {
      out.has_more = true;
      out.events.pop_back();
    }
    // Past the newest event, the reader moves back to it (a cursor from a database since
    // restored from a backup): ahead of the log, it would skip the events to come.
    out.last_seq = out.has_more ? out.events.back().seq : newest;
  };
  PgDatabase::Body fn = body;
  co_await db_.transaction(std::move(fn), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  co_return out;
}

asio::awaitable<std::vector<EventRecord>> PgChatStore::events_since(
    std::vector<std::int64_t> chat_ids, std::vector<std::int64_t> user_ids, std::int64_t after_seq,
    int limit) {
  auto params = pg_params(after_seq, array_literal(chat_ids), array_literal(user_ids), limit);
  auto r = co_await db_.query(kEventsSince, std::move(params));
  auto out = all_rows<EventRecord>(r, read_event);
  // Read for delivery: hiders kept from what they hid (as they are now: a hide is never
  // undone, and one since then is on its way too), and the copies of messages brought up to
  // date (as new as the events or newer: an edit's own event follows in the log either way).
  const auto seqs = seqs_skipping_hiders(out);
  if (!seqs.empty()) {
    auto params = pg_params(array_literal(seqs));
    auto found = co_await db_.query(kHidersOfEvents, std::move(params));
    std::vector<std::pair<std::int64_t, std::int64_t>> hiders;
    hiders.reserve(static_cast<std::size_t>(found.rows()));
    for (int i = 0; i < found.rows(); ++i) {
      hiders.emplace_back(found.int64(i, 0), found.int64(i, 1));
    }
    apply_hiders(out, hiders);
  }
  CopiesInLog copies(out);
  if (copies.ids().empty()) co_return out;
  auto ids = pg_params(array_literal(copies.ids()));
  auto found = co_await db_.query(kCopiedMessages, std::move(ids));
  std::unordered_map<std::int64_t, MessageRecord> now;
  for (int i = 0; i < found.rows(); ++i) {
    auto message = read_message(found, i);
    now.emplace(message.id, std::move(message));
  }
  copies.apply(now);
  co_return out;
}

asio::awaitable<ReadStates> PgChatStore::read_states(std::int64_t user_id,
                                                     std::optional<std::int64_t> only_chat) {
  ReadStates out;
  auto body = [&](PgConnection& c) -> asio::awaitable<void> {
    out = ReadStates{};
    std::vector<PgStatement> reads;
    reads.push_back({kLogState, {}});
    if (only_chat) {
      reads.push_back({kReadStateOfChat, pg_params(user_id, *only_chat)});
    } else {
      reads.push_back({kReadStates, pg_params(user_id)});
    }
    auto results = co_await c.pipeline(std::move(reads));
    out.seq = last_seq_of(results[0]);
    const auto& rows = results[1];
    for (int i = 0; i < rows.rows(); ++i) {
      out.chats.push_back(
          {rows.int64(i, 0), rows.int64(i, 1), std::max<std::int64_t>(0, rows.int64(i, 2))});
    }
  };
  // One snapshot: the seq and the counts agree.
  PgDatabase::Body fn = body;
  co_await db_.transaction(std::move(fn), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  co_return out;
}

asio::awaitable<std::int64_t> PgChatStore::newest_seq() {
  auto r = co_await db_.query(kLogState);
  co_return last_seq_of(r);
}

// ---- writes ------------------------------------------------------------------------------

asio::awaitable<CreatedChat> PgChatStore::create_chat(NewChat chat, EventsFor<CreatedChat> events) {
  CreatedChat out;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out = CreatedChat{};
    std::optional<std::string> private_key;
    if (chat.type == ChatType::private_chat && chat.members.size() == 2) {
      private_key = private_chat_key(chat.members[0].first, chat.members[1].first);
    }
    auto insert = pg_params(chat_type_name(chat.type), chat.name, private_key, chat.now);
    auto inserted = co_await c.prepared(kInsertChat, std::move(insert));
    if (inserted.rows() == 0) {
      // The pair has a chat already (perhaps created a moment ago by a concurrent call).
      auto find = pg_params(*private_key);
      auto existing = co_await c.prepared(kFindPrivate, std::move(find));
      out.chat_id = scalar(existing);
      out.created = false;
      co_return;
    }
    out.chat_id = inserted.int64(0, 0);
    out.created = true;
    std::vector<std::string> roles;
    for (const auto& [user_id, role] : chat.members) {
      out.member_ids.push_back(user_id);
      roles.emplace_back(role_name(role));
    }
    auto members =
        pg_params(out.chat_id, array_literal(out.member_ids), array_literal(roles), chat.now);
    co_await c.prepared(kInsertMembers, std::move(members));
    log.append(events(out), chat.now);
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<std::optional<ChatRecord>> PgChatStore::rename_chat(Standing by, std::string name,
                                                                    EventsFor<RenamedChat> events) {
  std::optional<ChatRecord> out;
  const std::int64_t chat_id = by.chat_id;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out.reset();
    if (!co_await stands(c, by, kLockChatForChange)) co_return;
    auto params = pg_params(chat_id, name);
    auto renamed = co_await c.prepared(kRenameChat, std::move(params));
    if (renamed.affected() != 1) co_return;
    out = co_await chat_by_id(c, chat_id);
    auto view = co_await renamed_view(c, *out);
    log.append(events(view), now_micros());
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<bool> PgChatStore::delete_chat(Standing by,
                                               EventsFor<std::vector<MemberRecord>> events) {
  bool deleted = false;
  const std::int64_t chat_id = by.chat_id;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    deleted = false;
    if (!co_await stands(c, by, kLockChat)) co_return;
    auto members = co_await members_of(c, chat_id);
    // Rows first: the event-log lock must be the last lock taken (see commit_logged).
    co_await delete_chat_rows(c, chat_id);
    auto logged = events(members);
    log.append(logged, now_micros());
    deleted = true;
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return deleted;
}

asio::awaitable<std::optional<MemberChange>> PgChatStore::add_member(
    Standing by, std::int64_t user_id, Role role, Micros now, EventsFor<MemberChange> events) {
  std::optional<MemberChange> out;
  const std::int64_t chat_id = by.chat_id;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out.reset();
    // FOR NO KEY UPDATE, as a rename: the new member's chat object names the members and
    // the pins, so additions take turns with each other and with pins, unpins and
    // deletions (FOR SHARE). Two additions at once each named the members without the
    // other, and the later one never heard of the earlier (its event went out before).
    if (!co_await stands(c, by, kLockChatForChange)) co_return;
    auto params = pg_params(chat_id, array_literal(std::vector<std::int64_t>{user_id}),
                            array_literal(std::vector<std::string>{role_name(role)}), now);
    auto inserted = co_await c.prepared(kInsertMembers, std::move(params));
    if (inserted.affected() != 1) co_return;  // a member already, or no such chat
    log.joined.emplace_back(chat_id, user_id);
    out = MemberChange{chat_id, user_id, role, std::nullopt};
    // Its last message read FOR SHARE, as a rename reads its newest: an edit or deletion of
    // it in flight commits first and is seen, or waits for the addition. Otherwise the new
    // member's event could show a message as it was before an edit or deletion logged
    // ahead of the event, which they never receive (they joined after it).
    out->seen_by_member = co_await summary_of(c, chat_id, user_id, true);
    log.append(events(*out), now);
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<std::optional<MemberChange>> PgChatStore::set_role(RoleChange r,
                                                                   EventsFor<MemberChange> events) {
  std::optional<MemberChange> out;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out.reset();
    // FOR UPDATE: a departure in progress is waited for, so the statement below sees the
    // roles it left, and so are the writes under a standing (kStands) in progress.
    auto lock = pg_params(r.chat_id);
    auto locked = co_await c.prepared(kLockChat, std::move(lock));
    if (locked.rows() == 0) co_return;
    auto params = pg_params(r.chat_id, r.user_id, role_name(r.from), role_name(r.to), r.actor_id,
                            role_name(r.actor_role));
    auto updated = co_await c.prepared(kSetRoleIfUnchanged, std::move(params));
    if (updated.affected() != 1) co_return;
    out = MemberChange{r.chat_id, r.user_id, r.to, std::nullopt};
    log.append(events(*out), now_micros());
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<std::optional<Departure>> PgChatStore::remove_member(std::int64_t chat_id,
                                                                     std::int64_t user_id,
                                                                     std::optional<RemovalBy> by,
                                                                     ChooseOwner choose_owner,
                                                                     EventsFor<Departure> events) {
  std::optional<Departure> out;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out.reset();
    // The chat row lock makes departures of one chat take turns: two members leaving at
    // once cannot both see the other one remaining.
    auto lock = pg_params(chat_id);
    auto locked = co_await c.prepared(kLockChat, std::move(lock));
    if (locked.rows() == 0) co_return;
    auto members = co_await members_of(c, chat_id);
    if (by && !still_removable(members, user_id, *by)) co_return;
    auto leaving =
        std::find_if(members.begin(), members.end(), [&](auto& m) { return m.user_id == user_id; });
    if (leaving == members.end()) co_return;
    const MemberRecord gone = *leaving;
    members.erase(leaving);
    Departure d{{chat_id, user_id, gone.role, std::nullopt}, members.empty()};
    if (d.chat_deleted) {
      co_await delete_chat_rows(c, chat_id);
      auto logged = events(d);
      log.append(logged, now_micros());
    } else {
      // The messages the member hid stay hidden, as on SQLite (chat_store.cpp).
      d.change.promoted_user_id = choose_owner(gone, members);
      // The member rows changed, locked in user order first, as deliveries lock theirs
      // (kLockDeliveredRows): removing a member above its successor, then promoting it,
      // could wait in a cycle with a delivery to both.
      std::vector<std::int64_t> changed{user_id};
      if (d.change.promoted_user_id) changed.push_back(*d.change.promoted_user_id);
      auto rows = pg_params(chat_id, array_literal(changed));
      co_await c.prepared(kLockMemberRows, std::move(rows));
      auto remove = pg_params(chat_id, user_id);
      co_await c.prepared(kRemoveMember, std::move(remove));
      if (d.change.promoted_user_id) {
        auto promote = pg_params(chat_id, *d.change.promoted_user_id, role_name(Role::owner));
        co_await c.prepared(kSetRole, std::move(promote));
      }
      log.append(events(d), now_micros());
    }
    out = d;
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

// ---- sends: group commit ------------------------------------------------------------
//
// Every send used to be a transaction of its own: a dozen round trips, then COMMIT (a WAL
// flush) and the publish barrier under the event-log lock, which the deployment's writes
// take in turn, so sends were as many per second as that sequence fits in (about 500
// here). Now the sends that arrive while a batch is being written wait for the next one,
// and a batch is one transaction: one round trip carrying every send (one call of
// chat_send_messages, a server-side function, and the chats' watermarks), one for the
// event-log lock, all events and COMMIT, and one barrier. A batch is written by one of its own
// sends; the others are woken when it is done.

struct PgChatStore::PendingSend {
  NewMessage message;
  EventsFor<SentMessage> events;
  std::string words;
  std::optional<SentMessage> result;
  std::exception_ptr error;
  // Under sends_mutex_:
  bool written = false;  // result or error is set
  // The batch it is to write (taken off the queue when it was chosen, so no other writer
  // can take these sends; its own send is always among them).
  std::vector<std::shared_ptr<PendingSend>> to_write;
  // Resumes the sender, while it waits for one of them to be true.
  struct Waiting {
    virtual ~Waiting() = default;
    virtual void resume() = 0;
  };
  std::unique_ptr<Waiting> waiting;
};

namespace {

constexpr std::size_t kMaxSendBatch = 256;
// Batches written at once by a node: while one waits for its COMMIT and barrier (under the
// event-log lock), others run their sends, which take only their chats' row locks. Two,
// unless sends pile up: every batch takes the event-log lock once, so under a moderate
// load more and smaller batches only queue for it (paced at 3,000/s, the commit p50 was
// 5.5-13.5 ms with four always allowed, 3.7-5.8 ms this way). A queue of kDeepQueue sends
// lets up to four run, as a node needs when sends come as fast as they can.
constexpr int kBatchesInFlight = 2;
constexpr int kMaxBatchesInFlight = 4;
constexpr std::size_t kDeepQueue = 64;

// Whether another batch should start now (sends_mutex_ held).
bool another_batch(int in_flight, std::size_t queued) {
  if (queued == 0) return false;
  return in_flight < kBatchesInFlight || (in_flight < kMaxBatchesInFlight && queued >= kDeepQueue);
}

// A coroutine's completion handler, posted to the coroutine's executor when resumed.
template <class Handler>
struct WaitingHandler final : PgChatStore::PendingSend::Waiting {
  explicit WaitingHandler(Handler h) : handler(std::move(h)) {}
  void resume() override {
    auto ex = asio::get_associated_executor(handler);
    asio::post(ex, std::move(handler));
  }
  Handler handler;
};

// Completes (on the sender's executor) once the send is written or is to write the next
// batch.
auto until_turn(PgChatStore::PendingSend& p, std::mutex& mutex) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
      [&p, &mutex](auto handler) {
        std::unique_lock lock(mutex);
        auto waiting = std::make_unique<WaitingHandler<decltype(handler)>>(std::move(handler));
        if (p.written || !p.to_write.empty()) {
          lock.unlock();
          waiting->resume();
          return;
        }
        p.waiting = std::move(waiting);
      },
      asio::use_awaitable);
}

// Resumes a waiting sender (sends_mutex_ held: the handler is taken under it).
void resume(PgChatStore::PendingSend& p) {
  if (p.waiting) std::exchange(p.waiting, nullptr)->resume();
}

// The next batch: the first sends of the queue (sends_mutex_ held).
std::vector<std::shared_ptr<PgChatStore::PendingSend>> take_batch(
    std::vector<std::shared_ptr<PgChatStore::PendingSend>>& queue) {
  const auto n = static_cast<std::ptrdiff_t>(std::min(queue.size(), kMaxSendBatch));
  std::vector<std::shared_ptr<PgChatStore::PendingSend>> batch(queue.begin(), queue.begin() + n);
  queue.erase(queue.begin(), queue.begin() + n);
  return batch;
}

}  // namespace

asio::awaitable<std::optional<SentMessage>> PgChatStore::send_message(
    NewMessage m, EventsFor<SentMessage> events) {
  auto pending = std::make_shared<PendingSend>();
  pending->words = search_words(m.text);
  pending->message = std::move(m);
  pending->events = std::move(events);
  {
    std::lock_guard lock(sends_mutex_);
    queued_sends_.push_back(pending);
    // The first send of the queue writes the next batch now (often this one, alone).
    if (another_batch(batches_in_flight_, queued_sends_.size())) {
      ++batches_in_flight_;
      auto first = queued_sends_.front();
      first->to_write = take_batch(queued_sends_);
      resume(*first);
    }
  }
  for (;;) {
    co_await until_turn(*pending, sends_mutex_);
    std::vector<std::shared_ptr<PendingSend>> batch;
    {
      std::lock_guard lock(sends_mutex_);
      batch = std::exchange(pending->to_write, {});
    }
    if (batch.empty()) break;  // written by another send's batch
    co_await write_batch(std::move(batch));
  }
  if (pending->error) std::rethrow_exception(pending->error);
  co_return std::move(pending->result);
}

asio::awaitable<void> PgChatStore::write_each_if_need_be(const PendingSends& batch) {
  std::exception_ptr failed;
  bool database_away = false;
  PendingSends later;
  try {
    later = co_await write_sends(batch);
  } catch (const Contended&) {
    failed = std::current_exception();  // perhaps one send's locks: each on its own
  } catch (const Unavailable&) {
    failed = std::current_exception();  // none of them can be written now
    database_away = true;
  } catch (...) {
    failed = std::current_exception();
  }
  if (failed && !database_away && batch.size() > 1) {
    // One bad send fails the transaction of all: each is written on its own again, so
    // only the bad one fails. (A send alone leaves nothing for later.)
    failed = nullptr;
    for (const auto& p : batch) {
      try {
        const PendingSends one{p};
        co_await write_sends(one);
      } catch (...) {
        p->error = std::current_exception();
      }
    }
  }
  if (failed) {
    for (const auto& p : batch) p->error = failed;
  }
  // After the batch's commit, in their own transaction: a failure there is theirs alone.
  if (!later.empty()) co_await write_each_if_need_be(later);
}

asio::awaitable<void> PgChatStore::write_batch(PendingSends batch) {
  co_await write_each_if_need_be(batch);
  std::lock_guard lock(sends_mutex_);
  for (const auto& p : batch) {
    p->written = true;
    resume(*p);
  }
  // The first send still waiting writes the next batch (taken for it now), unless the other
  // batches in flight are enough for the queue: then there is one batch fewer in flight.
  if (!another_batch(batches_in_flight_ - 1, queued_sends_.size())) {
    --batches_in_flight_;
  } else {
    auto next = queued_sends_.front();
    next->to_write = take_batch(queued_sends_);
    resume(*next);
  }
}

asio::awaitable<PgChatStore::PendingSends> PgChatStore::write_sends(const PendingSends& batch) {
  // What chat_send_messages stores: each send, except that a client_id repeated within the
  // batch is left out and answered as its first send is, created false, as a retry would
  // be (`answered_by`: the index in `unique` whose answer a send takes).
  // A forward's original may turn out gone, which stores nothing: a send repeating the key
  // of a forward (or a forward repeating another send's) must not take that refusal, so
  // it is left for after this batch commits, as if it had come later (`later`).
  constexpr std::size_t kLater = SIZE_MAX;
  std::vector<const PendingSend*> unique;
  std::vector<std::size_t> answered_by(batch.size());
  PendingSends later;
  std::map<std::tuple<std::int64_t, std::int64_t, std::string_view>, std::size_t> first_of;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const NewMessage& m = batch[i]->message;
    if (m.client_id) {
      auto [at, fresh] =
          first_of.try_emplace({m.chat_id, m.sender_id, *m.client_id}, unique.size());
      if (!fresh) {
        if (m.copy_of || unique[at->second]->message.copy_of) {
          answered_by[i] = kLater;
          later.push_back(batch[i]);
        } else {
          answered_by[i] = at->second;
        }
        continue;
      }
    }
    answered_by[i] = unique.size();
    unique.push_back(batch[i].get());
  }
  std::vector<std::int64_t> copied;  // the originals of the forwards
  for (const PendingSend* p : unique) {
    if (p->message.copy_of) copied.push_back(*p->message.copy_of);
  }

  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    std::unordered_map<std::int64_t, std::string> originals;  // the live ones, by id
    if (!copied.empty()) {
      // The batch's chats first, as chat_send_messages locks them, then the originals. The
      // writes that change a message (an edit, a deletion for everyone, the chat's deletion)
      // lock its chat's row before it: a batch holding an original while waiting for a chat
      // such a write holds deadlocked with it.
      std::vector<std::int64_t> targets;
      targets.reserve(unique.size());
      for (const PendingSend* p : unique) targets.push_back(p->message.chat_id);
      auto chats = pg_params(array_literal(targets));
      co_await c.prepared(kLockBatchChats, std::move(chats));
      auto lock = pg_params(array_literal(copied));
      auto live = co_await c.prepared(kLockOriginals, std::move(lock));
      for (int r = 0; r < live.rows(); ++r) {
        originals.emplace(live.int64(r, 0), std::string(live.text(r, 1)));
      }
    }
    // The sends written (indexes in `unique`): all but forwards of deleted originals, which
    // are answered as such.
    std::vector<std::size_t> written;
    std::vector<std::optional<SentMessage>> stored(unique.size());
    std::vector<std::int64_t> chats, senders, nows;
    std::vector<std::optional<std::int64_t>> forwarded;
    std::vector<std::string> texts, words;
    std::vector<std::optional<std::string>> client_ids;
    for (std::size_t u = 0; u < unique.size(); ++u) {
      const NewMessage& m = unique[u]->message;
      std::string text = m.text;
      std::string search = unique[u]->words;
      if (m.copy_of) {
        auto original = originals.find(*m.copy_of);
        if (original == originals.end()) {
          stored[u] = SentMessage{.original_gone = true};
          continue;
        }
        if (original->second != text) {
          text = original->second;
          search = search_words(text);
        }
      }
      written.push_back(u);
      chats.push_back(m.chat_id);
      senders.push_back(m.sender_id);
      texts.push_back(std::move(text));
      nows.push_back(m.now);
      forwarded.push_back(m.forwarded_from);
      client_ids.push_back(m.client_id);
      words.push_back(std::move(search));
    }
    std::vector<std::int64_t> chat_ids = chats;
    std::sort(chat_ids.begin(), chat_ids.end());
    chat_ids.erase(std::unique(chat_ids.begin(), chat_ids.end()), chat_ids.end());
    std::map<std::int64_t, Watermarks> marks;
    if (!written.empty()) {
      std::vector<PgStatement> statements;
      // The chats, then the senders' member rows in (chat, user) order, then the sends, which
      // update those rows (their watermarks) in the batch's order: deliveries lock member
      // rows in that order (kLockDeliveredRows) and waited in a cycle with a batch updating
      // two of them the other way round. The chats again when forwards locked them above.
      statements.push_back({kLockBatchChats, pg_params(array_literal(chat_ids))});
      statements.push_back(
          {kLockSenderRows, pg_params(array_literal(chats), array_literal(senders))});
      statements.push_back(
          {kSendMessages,
           pg_params(array_literal(chats), array_literal(senders), array_literal(texts),
                     array_literal(nows), array_literal(forwarded), array_literal(client_ids),
                     array_literal(words))});
      // Read after the sends in the same pipeline: they see the senders' watermarks moved.
      statements.push_back({kLowestRead, pg_params(array_literal(chat_ids))});
      statements.push_back({kLowestDelivered, pg_params(array_literal(chat_ids))});
      auto results = co_await c.pipeline(std::move(statements));
      const PgResult& sent = results[2];
      for (int r = 0; r < sent.rows(); ++r) {
        const auto n = static_cast<std::size_t>(sent.int64(r, 11) - 1);
        if (n < written.size()) {
          auto& one = stored[written[n]];
          one = SentMessage{read_message(sent, r), sent.boolean(r, 10)};
          one->read_moved = sent.boolean(r, 12);
        }
      }
      marks = watermarks_of_chats(results[3], results[4]);
    }
    std::vector<NewEvent> events;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (answered_by[i] == kLater) continue;
      PendingSend& p = *batch[i];
      p.result = stored[answered_by[i]];
      if (!p.result) continue;  // the chat is gone, or the sender is not a member
      if (p.result->original_gone) continue;
      if (unique[answered_by[i]] != &p) p.result->created = false;
      if (auto w = marks.find(p.message.chat_id); w != marks.end()) p.result->marks = w->second;
      if (!p.result->created) continue;  // a retry logs nothing
      for (auto& e : p.events(*p.result)) events.push_back(std::move(e));
    }
    log.append(events, now_micros());
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return later;
}

asio::awaitable<std::optional<MessageRecord>> PgChatStore::edit_message(
    Standing by, std::int64_t id, std::string text, Micros now, EventsFor<MessageRecord> events) {
  std::optional<MessageRecord> out;
  const std::string words = search_words(text);
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out.reset();
    if (!co_await stands(c, by, kKeyShareChat)) co_return;
    auto params = pg_params(id, text, now, words);
    auto edited = co_await c.prepared(kEditMessage, std::move(params));
    if (edited.affected() != 1) co_return;
    out = co_await message_by_id(c, id);
    co_await relog_text(c, *out);
    log.append(events(*out), now);
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<std::optional<MessageRecord>> PgChatStore::delete_message(
    std::optional<Standing> by, std::int64_t id, EventsFor<MessageRecord> events,
    EventsFor<PinRecord> unpinned) {
  std::optional<MessageRecord> out;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out.reset();
    // FOR SHARE, as a pin or unpin: the deletion takes the message's pin with it, so it
    // takes turns with the writes whose events name the pins (a rename, an addition).
    if (by) {
      if (!co_await stands(c, *by, kShareChat)) co_return;
    } else {  // staff: the chat is the message's
      const auto found = co_await message_by_id(c, id);
      if (!found) co_return;
      auto chat = pg_params(found->chat_id);
      auto shared = co_await c.prepared(kShareChat, std::move(chat));
      if (shared.rows() == 0) co_return;
    }
    auto params = pg_params(id);
    auto deleted = co_await c.prepared(kDeleteMessage, std::move(params));
    if (deleted.affected() != 1) co_return;
    out = co_await message_by_id(c, id);
    co_await relog_text(c, *out);
    const Micros now = now_micros();
    log.append(events(*out), now);
    // After the message's row: a pin in progress holds it and commits first, and is seen.
    auto pin_params = pg_params(out->chat_id, id);
    auto pin = co_await c.prepared(kUnpinMessage, std::move(pin_params));
    if (pin.rows() != 0) log.append(unpinned(read_pin(pin, 0)), now);
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<bool> PgChatStore::hide_message(std::int64_t user_id, const MessageRecord& message,
                                                EventsFor<MessageRecord> events) {
  bool hidden = false;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    hidden = false;
    // After a rename in progress, or before it: its event shows the hider what they see.
    // Still a member once the chat row is shared: a hide racing the chat's deletion or the
    // hider's removal stores and logs nothing.
    const Standing member{message.chat_id, user_id, std::nullopt};
    if (!co_await stands(c, member, kShareChat)) co_return;
    auto params = pg_params(user_id, message.chat_id, message.id);
    auto inserted = co_await c.prepared(kHideMessage, std::move(params));
    hidden = inserted.affected() == 1;
    if (hidden) log.append(events(message), now_micros());
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return hidden;
}

asio::awaitable<WatermarkChange> PgChatStore::mark_read(std::int64_t chat_id, std::int64_t user_id,
                                                        std::int64_t value,
                                                        EventsFor<WatermarkChange> events) {
  WatermarkChange out;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out = co_await raise_read_watermark(c, log, chat_id, user_id, value, events);
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<std::vector<DeliveredBatch>> PgChatStore::mark_delivered_many(
    DeliveredNotes notes, EventsFor<DeliveredBatch> events) {
  std::vector<std::int64_t> chat_ids;
  std::vector<std::int64_t> chats;  // one per note, with its user and value
  std::vector<std::int64_t> users;
  std::vector<std::int64_t> values;
  for (const auto& [chat_id, notes_of_chat] : notes) {
    chat_ids.push_back(chat_id);
    for (const auto& [user_id, value] : notes_of_chat) {
      chats.push_back(chat_id);
      users.push_back(user_id);
      values.push_back(value);
    }
  }
  const std::string chat_list = array_literal(chat_ids);
  const std::string note_chats = array_literal(chats);
  const std::string note_users = array_literal(users);
  const std::string note_values = array_literal(values);
  std::vector<DeliveredBatch> out;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    // The five statements in one round trip: each sees the ones before it.
    std::vector<PgStatement> steps;
    steps.push_back({kTakeTurnsInLargeChats, pg_params(chat_list, kDeliveredEachMemberUpTo)});
    steps.push_back({kLockDeliveredRows, pg_params(note_chats, note_users)});
    steps.push_back({kDeliveredTotals, pg_params(chat_list)});
    steps.push_back({kRaiseDeliveredMany, pg_params(note_chats, note_users, note_values)});
    steps.push_back({kDeliveredTotals, pg_params(chat_list)});
    auto results = co_await c.pipeline(std::move(steps));
    std::map<std::int64_t, DeliveredBatch> batches;
    for (const std::int64_t chat_id : chat_ids) batches[chat_id].chat_id = chat_id;
    const PgResult& before = results[2];
    for (int row = 0; row < before.rows(); ++row) {
      auto& b = batches[before.int64(row, 0)];
      b.member_count = before.int64(row, 1);
      b.lowest_before = before.int64(row, 2);
    }
    const PgResult& raised = results[3];
    for (int row = 0; row < raised.rows(); ++row) {
      const std::int64_t chat_id = raised.int64(row, 0);
      batches[chat_id].changes.push_back(
          {chat_id, raised.int64(row, 1), raised.int64(row, 2), true});
    }
    const PgResult& after = results[4];
    for (int row = 0; row < after.rows(); ++row) {
      batches[after.int64(row, 0)].lowest_after = after.int64(row, 2);
    }
    out.clear();
    const Micros now = now_micros();
    for (auto& [chat_id, b] : batches) {
      // By user, as the SQLite store reports them.
      std::sort(b.changes.begin(), b.changes.end(),
                [](const auto& x, const auto& y) { return x.user_id < y.user_id; });
      if (!b.changes.empty()) log.append(events(b), now);
      out.push_back(std::move(b));
    }
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<std::optional<std::pair<PinRecord, bool>>> PgChatStore::pin(
    Standing by, std::int64_t message_id, Micros now, EventsFor<PinRecord> events) {
  std::optional<std::pair<PinRecord, bool>> out;
  const std::int64_t chat_id = by.chat_id;
  const std::int64_t user_id = by.user_id;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    out.reset();
    // FOR SHARE: after a rename in progress, or before it, as its event names the pins
    // (renamed_view).
    if (!co_await stands(c, by, kShareChat)) co_return;
    auto lock = pg_params(message_id, chat_id);
    auto live = co_await c.prepared(kLockLiveMessage, std::move(lock));
    if (live.rows() == 0) co_return;
    auto insert = pg_params(chat_id, message_id, user_id, now);
    auto inserted = co_await c.prepared(kInsertPin, std::move(insert));
    const bool created = inserted.affected() == 1;
    auto find = pg_params(chat_id, message_id);
    auto found = co_await c.prepared(kPinByMessage, std::move(find));
    out.emplace(found.rows() > 0 ? read_pin(found, 0) : PinRecord{}, created);
    if (created) log.append(events(out->first), now);
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return out;
}

asio::awaitable<bool> PgChatStore::unpin(Standing by, std::int64_t pin_id,
                                         EventsFor<PinRecord> events) {
  bool removed = false;
  auto body = [&](PgConnection& c, TxLog& log) -> asio::awaitable<void> {
    removed = false;
    if (!co_await stands(c, by, kShareChat)) co_return;  // FOR SHARE: see pin()
    auto find = pg_params(pin_id);
    auto found = co_await c.prepared(kPinById, std::move(find));
    if (found.rows() == 0) co_return;
    const PinRecord pin = read_pin(found, 0);
    if (pin.chat_id != by.chat_id) co_return;
    auto del = pg_params(pin_id);
    auto deleted = co_await c.prepared(kDeletePin, std::move(del));
    if (deleted.affected() != 1) co_return;  // a concurrent unpin won
    log.append(events(pin), now_micros());
    removed = true;
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return removed;
}

asio::awaitable<std::int64_t> PgChatStore::prune_events(Micros before) {
  std::int64_t pruned = 0;
  auto body = [&](PgConnection& c, TxLog&) -> asio::awaitable<void> {
    auto upto_params = pg_params(before);
    auto upto = co_await c.prepared(kPruneEventsUpTo, std::move(upto_params));
    const std::int64_t through = scalar(upto);
    pruned = 0;
    if (through > 0) {
      auto del = pg_params(through);
      auto deleted = co_await c.prepared(kDeleteEventsUpTo, std::move(del));
      pruned = deleted.affected();
      auto mark = pg_params(through);
      co_await c.prepared(kSetPrunedThrough, std::move(mark));
    }
  };
  WriteBody fn = body;
  co_await write(std::move(fn));
  co_return pruned;
}

}  // namespace chat::store::postgres
