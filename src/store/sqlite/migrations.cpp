#include "store/sqlite/migrations.hpp"

#include "store/username_key_migration.hpp"

namespace chat::store::sqlite {
namespace {

// Times are microseconds (or seconds, where the name says so) since the Unix epoch.
constexpr const char* k0001_users = R"sql(
CREATE TABLE users (
  id            INTEGER PRIMARY KEY,
  username      TEXT    NOT NULL,
  username_key  TEXT    NOT NULL,
  email         TEXT    NOT NULL DEFAULT '',
  password_hash TEXT    NOT NULL,
  is_active     INTEGER NOT NULL DEFAULT 1,
  is_staff      INTEGER NOT NULL DEFAULT 0,
  is_superuser  INTEGER NOT NULL DEFAULT 0,
  date_joined   INTEGER NOT NULL,
  last_seen     INTEGER
);
-- Case-insensitive uniqueness: username_key is the case-folded username.
CREATE UNIQUE INDEX users_username_key ON users(username_key);

CREATE TABLE refresh_tokens (
  jti                TEXT    PRIMARY KEY,
  user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  issued_at_seconds  INTEGER NOT NULL,
  expires_at_seconds INTEGER NOT NULL,
  revoked_at         INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens(expires_at_seconds);
)sql";

// Chats and messages. Read state is a pair of watermarks per member; unread counts come
// from message ordinals (a message's position in its chat), so counting costs index
// lookups, not a scan. The event log has one row per change, visible to the chat's members
// from the moment they joined (joined_seq), or to one user when user_id is set.
constexpr const char* k0002_chats = R"sql(
CREATE TABLE chats (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  type             TEXT    NOT NULL CHECK (type IN ('private', 'group')),
  name             TEXT    NOT NULL DEFAULT '',
  private_key      TEXT    UNIQUE,  -- "smaller_id:larger_id" for private chats
  created_at       INTEGER NOT NULL,
  last_message_id  INTEGER NOT NULL DEFAULT 0,
  message_count    INTEGER NOT NULL DEFAULT 0,
  last_activity_at INTEGER NOT NULL
);

CREATE TABLE chat_members (
  chat_id                   INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  user_id                   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role                      TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  joined_at                 INTEGER NOT NULL,
  joined_seq                INTEGER NOT NULL DEFAULT 0,
  last_read_message_id      INTEGER NOT NULL DEFAULT 0,
  last_delivered_message_id INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;
CREATE INDEX chat_members_user ON chat_members(user_id, chat_id);
CREATE INDEX chat_members_read ON chat_members(chat_id, last_read_message_id);
CREATE INDEX chat_members_delivered ON chat_members(chat_id, last_delivered_message_id);

CREATE TABLE messages (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  chat_id        INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  sender_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,
  text           TEXT    NOT NULL,
  created_at     INTEGER NOT NULL,
  edited_at      INTEGER,
  is_deleted     INTEGER NOT NULL DEFAULT 0,
  forwarded_from INTEGER,
  client_id      TEXT,
  ordinal        INTEGER NOT NULL  -- 1, 2, 3... within the chat
);
CREATE INDEX messages_chat ON messages(chat_id, id);
-- Idempotent send: one message per sender, chat and client_id, for ever.
CREATE UNIQUE INDEX messages_client_id ON messages(chat_id, sender_id, client_id)
  WHERE client_id IS NOT NULL;
CREATE INDEX messages_deleted ON messages(chat_id, id) WHERE is_deleted = 1;

CREATE TABLE hidden_messages (
  user_id    INTEGER NOT NULL,
  chat_id    INTEGER NOT NULL,
  message_id INTEGER NOT NULL,
  PRIMARY KEY (user_id, chat_id, message_id)
) WITHOUT ROWID;

CREATE TABLE pins (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  chat_id    INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  pinned_by  INTEGER NOT NULL,
  pinned_at  INTEGER NOT NULL,
  UNIQUE (chat_id, message_id)
);

-- Full-text index of message text; rowid = messages.id. unicode61 folds case for every
-- script and strips diacritics, so "привет" finds "Привет".
CREATE VIRTUAL TABLE messages_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');

CREATE TABLE events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  chat_id    INTEGER NOT NULL,
  user_id    INTEGER,
  type       TEXT    NOT NULL,
  payload    TEXT    NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX events_chat ON events(chat_id, seq);
CREATE INDEX events_user ON events(user_id, seq) WHERE user_id IS NOT NULL;
CREATE INDEX events_time ON events(created_at);

CREATE TABLE event_log_state (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  pruned_through INTEGER NOT NULL
);
INSERT INTO event_log_state(id, pruned_through) VALUES (1, 0);
)sql";

// Sessions ended by logging out: their access tokens stop working and their sockets close.
constexpr const char* k0003_ended_sessions = R"sql(
CREATE TABLE ended_sessions (
  session            TEXT    PRIMARY KEY,
  ended_at           INTEGER NOT NULL,
  keep_until_seconds INTEGER NOT NULL
);
)sql";

// The full-text index reads message text from `messages` (external content) instead of
// keeping a copy of every text, a fifth of the file, and keeps no per-row token counts
// (`columnsize=0`: nothing ranks by them). An entry is removed with the text it was made
// from (chat_store.cpp: unindex_text). Deleted messages have no entry, as before.
constexpr const char* k0004_external_text_index = R"sql(
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content = 'messages', content_rowid = 'id',
  columnsize = 0, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages WHERE is_deleted = 0;
)sql";

// Each message's and edit's event names its message, so that editing or deleting the
// message rewrites the text those events carry (NewEvent::message_id); events logged
// before this migration get the same: their message named, their text brought in step.
constexpr const char* k0005_logged_message_text = R"sql(
ALTER TABLE events ADD COLUMN message_id INTEGER;
UPDATE events SET message_id = json_extract(payload, '$.message_id')
  WHERE type IN ('message', 'edit') AND json_valid(payload);
CREATE INDEX events_message ON events(message_id) WHERE message_id IS NOT NULL;
UPDATE events SET payload = json_set(payload, '$.text',
    (SELECT m.text FROM messages m WHERE m.id = events.message_id))
  WHERE message_id IS NOT NULL AND json_type(payload, '$.text') = 'text' AND EXISTS
    (SELECT 1 FROM messages m WHERE m.id = events.message_id
       AND m.text IS NOT json_extract(events.payload, '$.text'));
)sql";

// Each refresh token names its login session, so that a password change can end the
// user's other sessions (their access tokens refused, their sockets closed) and keep the
// caller's. Tokens issued before stay without one; they are revoked as before.
constexpr const char* k0006_refresh_token_sessions = R"sql(
ALTER TABLE refresh_tokens ADD COLUMN session TEXT;
)sql";

// The index migration 5 gave events.message_id was one more B-tree written by every send
// (5-10 % of closed-loop ingest here); a message's events are now found through its
// chat's events from the message's time on (chat_store.cpp: kLoggedForMessage).
constexpr const char* k0007_no_message_event_index = R"sql(
DROP INDEX IF EXISTS events_message;
)sql";

// Prefix indexes of one and two characters. A search term is a prefix, and FTS5 answers a
// prefix without an index of its length by merging the entries of every indexed word that
// starts with it: "a" over 10,000 messages of 500 distinct words took 1.3 s of CPU, with
// the reader thread it held. Longer prefixes start fewer words. Each word of a message
// costs two more index entries.
constexpr const char* k0008_text_index_prefixes = R"sql(
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content = 'messages', content_rowid = 'id',
  columnsize = 0, prefix = '1 2', tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages WHERE is_deleted = 0;
)sql";

// The index also holds each message's chat (FTS5 reads it from messages.chat_id like the
// text), so that a search of one chat, or of a user in few chats, asks the index for their
// matches alone (rows.cpp: fts_match). Before, it walked everyone's matches newest first
// and dropped those of other chats: a search for "a" by a user with one match among 10,000
// messages of others visited all 10,000.
constexpr const char* k0009_text_index_chats = R"sql(
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(text, chat_id, content = 'messages',
  content_rowid = 'id', columnsize = 0, prefix = '1 2',
  tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO messages_fts(rowid, text, chat_id)
  SELECT id, text, chat_id FROM messages WHERE is_deleted = 0;
)sql";

// Search folds "ё" into "е" and "й" into "и" (unicode::without_diacritics), as PostgreSQL's
// store does, so "елка" finds "ёлка"; unicode61 keeps both letters. The index reads a
// message through this view (FTS5 external content may be a view): deleting an entry, or
// remaking the index, tokenizes what was indexed, and the store indexes the same folded
// text (chat_store.cpp: index_text, via unicode::search_folded_cyrillic).
constexpr const char* k0010_text_index_folds = R"sql(
CREATE VIEW messages_search_text AS
  SELECT id, replace(replace(replace(replace(text, 'ё', 'е'), 'Ё', 'Е'), 'й', 'и'), 'Й', 'И')
    AS text, chat_id
  FROM messages;
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(text, chat_id, content = 'messages_search_text',
  content_rowid = 'id', columnsize = 0, prefix = '1 2',
  tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO messages_fts(rowid, text, chat_id)
  SELECT v.id, v.text, v.chat_id FROM messages_search_text v JOIN messages m ON m.id = v.id
  WHERE m.is_deleted = 0;
)sql";

// A deleted message keeps its row (text "", its chat) but has no index entry, so the view
// shows it without a chat as well: what the index holds then matches its content exactly
// (FTS5's integrity-check with content, or a 'rebuild', found the deleted rows' chats).
constexpr const char* k0011_text_index_deleted = R"sql(
DROP VIEW messages_search_text;
CREATE VIEW messages_search_text AS
  SELECT id, replace(replace(replace(replace(text, 'ё', 'е'), 'Ё', 'Е'), 'й', 'и'), 'Й', 'И')
    AS text, CASE WHEN is_deleted = 0 THEN chat_id END AS chat_id
  FROM messages;
)sql";

// A deleted chat's rows are removed in slices after it has gone (chat_store.cpp:
// kRetireChat): the chat row says so meanwhile. Pins are found by message when a message's
// row goes (their foreign key), which read the whole pins table once per message.
constexpr const char* k0012_chat_purging = R"sql(
ALTER TABLE chats ADD COLUMN purging INTEGER NOT NULL DEFAULT 0;
CREATE INDEX chats_purging ON chats(id) WHERE purging = 1;
CREATE INDEX pins_message ON pins(message_id);
)sql";

// A message deleted for everyone loses its pin (SqliteChatStore::delete_message); the
// pins that messages deleted before that rule kept go too.
constexpr const char* k0013_unpin_deleted_messages = R"sql(
DELETE FROM pins WHERE message_id IN (SELECT id FROM messages WHERE is_deleted = 1);
)sql";

// Who hid a message, found by the message (the key starts with the user): each edit,
// deletion or pin reads them, and so does a catch-up's page of such events. Through the
// chat's members instead, one lookup each, that cost a 10,000-member group's size per write.
constexpr const char* k0015_hidden_messages_by_message = R"sql(
CREATE INDEX hidden_messages_message ON hidden_messages(chat_id, message_id);
)sql";

// A chat-wide deletion, pin or unpin names its message, so that the members who hid the
// message do not get it (store::skips_hiders), in replays and from a node catching up. Such
// events logged before their message was named get it from their payload.
constexpr const char* k0016_event_message_ids = R"sql(
UPDATE events SET message_id = json_extract(payload, '$.message_id')
  WHERE message_id IS NULL AND user_id IS NULL AND type IN ('delete', 'pin', 'unpin')
    AND json_valid(payload);
)sql";

constexpr Migration kMigrations[] = {
    {1, "users_and_refresh_tokens", k0001_users},
    {2, "chats_messages_events", k0002_chats},
    {3, "ended_sessions", k0003_ended_sessions},
    {4, "external_text_index", k0004_external_text_index},
    {5, "logged_message_text", k0005_logged_message_text},
    {6, "refresh_token_sessions", k0006_refresh_token_sessions},
    {7, "no_message_event_index", k0007_no_message_event_index},
    {8, "text_index_prefixes", k0008_text_index_prefixes},
    {9, "text_index_chats", k0009_text_index_chats},
    {10, "text_index_folds", k0010_text_index_folds},
    {11, "text_index_deleted", k0011_text_index_deleted},
    {12, "chat_purging", k0012_chat_purging},
    {13, "unpin_deleted_messages", k0013_unpin_deleted_messages},
    {14, "username_keys_by_upper_case", chat::store::kUsernameKeysByUpperCase},
    {15, "hidden_messages_by_message", k0015_hidden_messages_by_message},
    {16, "event_message_ids", k0016_event_message_ids},
};

}  // namespace

std::span<const Migration> migrations() {
  return kMigrations;
}

}  // namespace chat::store::sqlite
