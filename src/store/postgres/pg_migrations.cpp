#include "store/postgres/pg_migrations.hpp"

#include "store/chat_store.hpp"
#include "store/postgres/pg_connection.hpp"
#include "store/username_key_migration.hpp"

#include <array>
#include <cstddef>

namespace chat::store::postgres {
namespace {

// The text of string literals one after another, as one literal (for a migration made of
// parts another migration shares).
template <std::size_t... N>
constexpr std::array<char, (N + ...) - sizeof...(N) + 1> joined(const char (&... parts)[N]) {
  std::array<char, (N + ...) - sizeof...(N) + 1> out{};
  std::size_t at = 0;
  auto append = [&](const char* part, std::size_t n) {
    for (std::size_t i = 0; i + 1 < n; ++i) out[at++] = part[i];
  };
  (append(parts, N), ...);
  return out;
}

// Times are microseconds (or seconds, where the name says so) since the Unix epoch, as in
// the SQLite schema, so both stores share their record types unchanged.
constexpr const char* k0001_users = R"sql(
CREATE TABLE users (
  id            BIGSERIAL PRIMARY KEY,
  username      TEXT    NOT NULL,
  username_key  TEXT    COLLATE "C" NOT NULL,  -- byte order: prefix search is a range scan
  email         TEXT    NOT NULL DEFAULT '',
  password_hash TEXT    NOT NULL,
  is_active     BOOLEAN NOT NULL DEFAULT TRUE,
  is_staff      BOOLEAN NOT NULL DEFAULT FALSE,
  is_superuser  BOOLEAN NOT NULL DEFAULT FALSE,
  date_joined   BIGINT  NOT NULL,
  last_seen     BIGINT
);
CREATE UNIQUE INDEX users_username_key ON users(username_key);

CREATE TABLE refresh_tokens (
  jti                TEXT   PRIMARY KEY,
  user_id            BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  issued_at_seconds  BIGINT NOT NULL,
  expires_at_seconds BIGINT NOT NULL,
  revoked_at         BIGINT
);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens(expires_at_seconds);
)sql";

// Chats and messages, as in the SQLite schema. Search is PostgreSQL's own full-text search:
// a tsvector with the 'simple' configuration (no stemming, so prefix queries find what the
// user typed) under a GIN index. The store fills it with the message's words as the server
// cuts and lower-cases them, so search does not depend on the database's locale.
constexpr const char* k0002_chats = R"sql(
CREATE TABLE chats (
  id               BIGSERIAL PRIMARY KEY,
  type             TEXT   NOT NULL CHECK (type IN ('private', 'group')),
  name             TEXT   NOT NULL DEFAULT '',
  private_key      TEXT   UNIQUE,
  created_at       BIGINT NOT NULL,
  last_message_id  BIGINT NOT NULL DEFAULT 0,
  message_count    BIGINT NOT NULL DEFAULT 0,
  last_activity_at BIGINT NOT NULL
);

CREATE TABLE chat_members (
  chat_id                   BIGINT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  user_id                   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role                      TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  joined_at                 BIGINT NOT NULL,
  joined_seq                BIGINT NOT NULL DEFAULT 0,
  last_read_message_id      BIGINT NOT NULL DEFAULT 0,
  last_delivered_message_id BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members(user_id, chat_id);
CREATE INDEX chat_members_read ON chat_members(chat_id, last_read_message_id);
CREATE INDEX chat_members_delivered ON chat_members(chat_id, last_delivered_message_id);

CREATE TABLE messages (
  id             BIGSERIAL PRIMARY KEY,
  chat_id        BIGINT  NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  sender_id      BIGINT  REFERENCES users(id) ON DELETE SET NULL,
  text           TEXT    NOT NULL,
  created_at     BIGINT  NOT NULL,
  edited_at      BIGINT,
  is_deleted     BOOLEAN NOT NULL DEFAULT FALSE,
  forwarded_from BIGINT,
  client_id      TEXT,
  ordinal        BIGINT  NOT NULL,
  search         tsvector NOT NULL DEFAULT ''::tsvector
);
CREATE INDEX messages_chat ON messages(chat_id, id);
CREATE UNIQUE INDEX messages_client_id ON messages(chat_id, sender_id, client_id)
  WHERE client_id IS NOT NULL;
CREATE INDEX messages_deleted ON messages(chat_id, id) WHERE is_deleted;
CREATE INDEX messages_search ON messages USING GIN (search);

CREATE TABLE hidden_messages (
  user_id    BIGINT NOT NULL,
  chat_id    BIGINT NOT NULL,
  message_id BIGINT NOT NULL,
  PRIMARY KEY (user_id, chat_id, message_id)
);

CREATE TABLE pins (
  id         BIGSERIAL PRIMARY KEY,
  chat_id    BIGINT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  pinned_by  BIGINT NOT NULL,
  pinned_at  BIGINT NOT NULL,
  UNIQUE (chat_id, message_id)
);

-- seq comes from event_log_state.last_seq, taken under the event-log lock, so seqs are
-- gapless and in commit order: a reader never passes an event that commits later with a
-- lower seq.
CREATE TABLE events (
  seq        BIGINT PRIMARY KEY,
  chat_id    BIGINT NOT NULL,
  user_id    BIGINT,
  type       TEXT   NOT NULL,
  payload    TEXT   NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX events_chat ON events(chat_id, seq);
CREATE INDEX events_user ON events(user_id, seq) WHERE user_id IS NOT NULL;
CREATE INDEX events_time ON events(created_at);

CREATE TABLE event_log_state (
  id             INT    PRIMARY KEY CHECK (id = 1),
  pruned_through BIGINT NOT NULL,
  last_seq       BIGINT NOT NULL DEFAULT 0
);
INSERT INTO event_log_state(id, pruned_through) VALUES (1, 0);
)sql";

// One send, done by the server: the store writes sends in batches, and a batch of these
// calls goes out in one round trip (PgChatStore::send_message). The same steps as a send
// always took: the chat row locked first (sends to one chat take turns until COMMIT, so
// ids follow commit order and a repeated client_id finds the first send), the membership
// checked, an earlier message with the same client_id returned as it is, else the message
// stored with its ordinal, the chat's activity and last message and the sender's
// watermarks moved. No row: the chat is gone or the sender is not a member.
constexpr const char* k0003_send_function = R"sql(
CREATE FUNCTION chat_send_message(p_chat BIGINT, p_sender BIGINT, p_text TEXT, p_now BIGINT,
                                  p_forwarded_from BIGINT, p_client_id TEXT, p_words TEXT)
RETURNS TABLE (r_id BIGINT, r_chat BIGINT, r_sender BIGINT, r_username TEXT, r_text TEXT,
               r_created_at BIGINT, r_edited_at BIGINT, r_is_deleted BOOLEAN,
               r_forwarded_from BIGINT, r_client_id TEXT, r_created BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
  v_ordinal BIGINT;
  v_id      BIGINT;
  v_created BOOLEAN := TRUE;
BEGIN
  SELECT c.message_count + 1 INTO v_ordinal FROM chats c WHERE c.id = p_chat FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  PERFORM 1 FROM chat_members cm WHERE cm.chat_id = p_chat AND cm.user_id = p_sender;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF p_client_id IS NOT NULL THEN
    SELECT m.id INTO v_id FROM messages m
     WHERE m.chat_id = p_chat AND m.sender_id = p_sender AND m.client_id = p_client_id;
    IF FOUND THEN
      v_created := FALSE;
    END IF;
  END IF;
  IF v_created THEN
    INSERT INTO messages AS m (chat_id, sender_id, text, created_at, forwarded_from, client_id,
                               ordinal, search)
    VALUES (p_chat, p_sender, p_text, p_now, p_forwarded_from, p_client_id, v_ordinal,
            to_tsvector('simple', p_words))
    RETURNING m.id INTO v_id;
    UPDATE chats c SET message_count = v_ordinal, last_activity_at = p_now, last_message_id = v_id
     WHERE c.id = p_chat;
    UPDATE chat_members cm
       SET last_read_message_id = GREATEST(cm.last_read_message_id, v_id),
           last_delivered_message_id = GREATEST(cm.last_delivered_message_id, v_id)
     WHERE cm.chat_id = p_chat AND cm.user_id = p_sender;
  END IF;
  RETURN QUERY
    SELECT m.id, m.chat_id, COALESCE(m.sender_id, 0), COALESCE(u.username, ''), m.text,
           m.created_at, m.edited_at, m.is_deleted, m.forwarded_from, m.client_id, v_created
      FROM messages m LEFT JOIN users u ON u.id = m.sender_id WHERE m.id = v_id;
END
$$;
)sql";

// Sessions ended by logging out: their access tokens stop working and their sockets close.
constexpr const char* k0004_ended_sessions = R"sql(
CREATE TABLE ended_sessions (
  session            TEXT   PRIMARY KEY,
  ended_at           BIGINT NOT NULL,
  keep_until_seconds BIGINT NOT NULL
);
)sql";

// A batch of sends in one call: the statements of chat_send_message run once per batch
// instead of once per send, which halves the database's CPU per message. The same steps
// and answers as a send each: every chat of the batch locked first, in id order (so two
// batches cannot deadlock), a send to a chat that is gone or by a non-member answers no
// row, a client_id already stored answers that message (created false), the others are
// stored with the next ordinals and ids of their chat in the order of the arrays, and each
// chat's last message and each sender's watermarks move once. (Ids are taken before the
// INSERT, so the answers need not be matched back to its rows.) The caller keeps a batch
// free of repeated client_ids (PgChatStore::write_sends). Each row says, last, which
// element of the arrays it answers (r_n, from 1). chat_send_message stays for nodes of
// the previous version during a rolling upgrade.
constexpr const char* k0005_send_batch_function = R"sql(
CREATE FUNCTION chat_send_messages(p_chats BIGINT[], p_senders BIGINT[], p_texts TEXT[],
                                   p_nows BIGINT[], p_forwarded BIGINT[], p_client_ids TEXT[],
                                   p_words TEXT[])
RETURNS TABLE (r_id BIGINT, r_chat BIGINT, r_sender BIGINT, r_username TEXT, r_text TEXT,
               r_created_at BIGINT, r_edited_at BIGINT, r_is_deleted BOOLEAN,
               r_forwarded_from BIGINT, r_client_id TEXT, r_created BOOLEAN, r_n BIGINT)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM chats c WHERE c.id = ANY(p_chats) ORDER BY c.id FOR UPDATE;
  -- A new statement: its snapshot sees every chat as the lock left it (message_count).
  RETURN QUERY
  WITH s AS (
    SELECT x.n, x.chat, x.sender, x.txt, x.at, x.fwd, x.cid, x.words
      FROM unnest(p_chats, p_senders, p_texts, p_nows, p_forwarded, p_client_ids, p_words)
           WITH ORDINALITY AS x(chat, sender, txt, at, fwd, cid, words, n)
  ), ok AS (
    SELECT s.*, c.message_count AS base, m.id AS known_id
      FROM s JOIN chats c ON c.id = s.chat
      JOIN chat_members cm ON cm.chat_id = s.chat AND cm.user_id = s.sender
      LEFT JOIN messages m ON s.cid IS NOT NULL AND m.chat_id = s.chat AND m.sender_id = s.sender
                          AND m.client_id = s.cid
  ), fresh AS (
    SELECT ok.*, ok.base + row_number() OVER (PARTITION BY ok.chat ORDER BY ok.n) AS ordinal,
           -- Taken in the window's order: each chat's ids rise with its ordinals.
           nextval('messages_id_seq') AS id
      FROM ok WHERE ok.known_id IS NULL
  ), inserted AS (
    INSERT INTO messages (id, chat_id, sender_id, text, created_at, forwarded_from, client_id,
                          ordinal, search)
    SELECT f.id, f.chat, f.sender, f.txt, f.at, f.fwd, f.cid, f.ordinal,
           to_tsvector('simple', f.words)
      FROM fresh f
  ), chat_moves AS (
    UPDATE chats c SET message_count = x.ordinal, last_activity_at = x.at, last_message_id = x.id
      FROM (SELECT DISTINCT ON (f.chat) f.chat, f.ordinal, f.at, f.id
              FROM fresh f ORDER BY f.chat, f.ordinal DESC) x
     WHERE c.id = x.chat
  ), member_moves AS (
    UPDATE chat_members cm
       SET last_read_message_id = GREATEST(cm.last_read_message_id, x.id),
           last_delivered_message_id = GREATEST(cm.last_delivered_message_id, x.id)
      FROM (SELECT f.chat, f.sender, max(f.id) AS id FROM fresh f GROUP BY f.chat, f.sender) x
     WHERE cm.chat_id = x.chat AND cm.user_id = x.sender
  )
  SELECT f.id, f.chat, f.sender, u.username, f.txt, f.at, NULL::BIGINT, FALSE, f.fwd, f.cid,
         TRUE, f.n
    FROM fresh f JOIN users u ON u.id = f.sender
  UNION ALL
  SELECT m.id, m.chat_id, COALESCE(m.sender_id, 0), COALESCE(u.username, ''), m.text,
         m.created_at, m.edited_at, m.is_deleted, m.forwarded_from, m.client_id, FALSE, ok.n
    FROM ok JOIN messages m ON m.id = ok.known_id LEFT JOIN users u ON u.id = m.sender_id;
END
$$;
)sql";

// A member's watermarks move with each of their sends and delivery acknowledgements. With
// them in indexes, every such UPDATE wrote a new entry into all four of the table's
// indexes, and the rows' dead versions piled up until autovacuum came round (150,000 in
// 2,000 live rows after 20 s of sends), slowing every read of the table. Without those
// two indexes the updates are HOT: the new version goes on the same page (the free half
// the fill factor leaves) and the old ones are pruned as the page is read. Finding a
// chat's two lowest watermarks now reads its members' rows through the primary key,
// once per chat in a batch of sends (about 0.4 ms for a thousand members).
constexpr const char* k0006_hot_watermarks = R"sql(
DROP INDEX chat_members_read;
DROP INDEX chat_members_delivered;
ALTER TABLE chat_members SET (fillfactor = 50);
)sql";

// Each message's and edit's event names its message, so that editing or deleting the
// message rewrites the text those events carry (NewEvent::message_id); events logged
// before this migration get the same: their message named, their text brought in step
// (rewritten through jsonb here, so their members may change order; chatd's own rewrites
// keep it).
constexpr const char* k0007_logged_message_text = R"sql(
ALTER TABLE events ADD COLUMN message_id BIGINT;
UPDATE events SET message_id = (payload::json ->> 'message_id')::bigint
  WHERE type IN ('message', 'edit');
CREATE INDEX events_message ON events(message_id) WHERE message_id IS NOT NULL;
UPDATE events e SET payload = jsonb_set(e.payload::jsonb, '{text}', to_jsonb(m.text))::text
  FROM messages m
  WHERE m.id = e.message_id AND (e.payload::json ->> 'text') IS DISTINCT FROM m.text;
)sql";

// Each refresh token names its login session, so that a password change can end the
// user's other sessions (their access tokens refused, their sockets closed) and keep the
// caller's. Tokens issued before stay without one; they are revoked as before.
constexpr const char* k0008_refresh_token_sessions = R"sql(
ALTER TABLE refresh_tokens ADD COLUMN session TEXT;
)sql";

// The index migration 7 gave events.message_id was one more B-tree written by every send;
// a message's events are now found through its chat's events from the message's time on
// (pg_chat_store.cpp: kLoggedForMessage).
constexpr const char* k0009_no_message_event_index = R"sql(
DROP INDEX IF EXISTS events_message;
)sql";

// A send that moves its sender's read watermark past others' messages says so (r_read_moved),
// so the other members hear a `read` event (SentMessage::read_moved). The function is
// migration 5's with that column added; a new return type needs DROP and CREATE.
//
// Its text is joined from the parts below, shared with migrations 11 and 16, which replace
// the function again; what migration 10 runs is unchanged.
constexpr char kSendFunctionDrop[] = R"sql(
DROP FUNCTION chat_send_messages(BIGINT[], BIGINT[], TEXT[], BIGINT[], BIGINT[], TEXT[], TEXT[]);
CREATE )sql";
constexpr char kSendFunctionStart[] =
    R"sql(FUNCTION chat_send_messages(p_chats BIGINT[], p_senders BIGINT[], p_texts TEXT[],
                                   p_nows BIGINT[], p_forwarded BIGINT[], p_client_ids TEXT[],
                                   p_words TEXT[])
RETURNS TABLE (r_id BIGINT, r_chat BIGINT, r_sender BIGINT, r_username TEXT, r_text TEXT,
               r_created_at BIGINT, r_edited_at BIGINT, r_is_deleted BOOLEAN,
               r_forwarded_from BIGINT, r_client_id TEXT, r_created BOOLEAN, r_n BIGINT,
               r_read_moved BOOLEAN)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM chats c WHERE c.id = ANY(p_chats) ORDER BY c.id FOR UPDATE;
  -- A new statement: its snapshot sees every chat as the lock left it (message_count).
  RETURN QUERY
  WITH s AS (
    SELECT x.n, x.chat, x.sender, x.txt, x.at, x.fwd, x.cid, x.words
      FROM unnest(p_chats, p_senders, p_texts, p_nows, p_forwarded, p_client_ids, p_words)
           WITH ORDINALITY AS x(chat, sender, txt, at, fwd, cid, words, n)
  ), ok AS (
    SELECT s.*, c.message_count AS base, m.id AS known_id,
           cm.last_read_message_id AS prev_read, c.last_message_id AS prev_last)sql";
constexpr char kSendMembers[] = R"sql(
      FROM s JOIN chats c ON c.id = s.chat
      JOIN chat_members cm ON cm.chat_id = s.chat AND cm.user_id = s.sender
      LEFT JOIN messages m ON s.cid IS NOT NULL AND m.chat_id = s.chat AND m.sender_id = s.sender
                          AND m.client_id = s.cid
)sql";
constexpr char kSendFresh[] = R"sql(  ), fresh AS (
    SELECT ok.*, ok.base + row_number() OVER (PARTITION BY ok.chat ORDER BY ok.n) AS ordinal,
           -- Taken in the window's order: each chat's ids rise with its ordinals.
           nextval('messages_id_seq') AS id
      FROM ok WHERE ok.known_id IS NULL
)sql";
constexpr char kSendWrites[] = R"sql(  ), inserted AS (
    INSERT INTO messages (id, chat_id, sender_id, text, created_at, forwarded_from, client_id,
                          ordinal, search)
    SELECT f.id, f.chat, f.sender, f.txt, f.at, f.fwd, f.cid, f.ordinal,
           to_tsvector('simple', f.words)
      FROM fresh f
  ), chat_moves AS (
    UPDATE chats c SET message_count = x.ordinal, last_activity_at = x.at, last_message_id = x.id
      FROM (SELECT DISTINCT ON (f.chat) f.chat, f.ordinal, f.at, f.id
              FROM fresh f ORDER BY f.chat, f.ordinal DESC) x
     WHERE c.id = x.chat
)sql";
constexpr char kSendMoved[] = R"sql(  ), moved AS (
    -- Whether a send carries its sender's read watermark past someone else's message: the
    -- newest message before it (the chat's, or the batch's before it) above the sender's
    -- watermark (as it was, or as the sender's earlier sends in the batch left it).
    SELECT f.n,
           GREATEST(f.prev_read, max(f.id) OVER (PARTITION BY f.chat, f.sender ORDER BY f.n
                                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
             < GREATEST(f.prev_last, max(f.id) OVER (PARTITION BY f.chat ORDER BY f.n
                                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
             AS read_moved
      FROM fresh f
)sql";
constexpr char kSendMemberMoves[] = R"sql(  ), member_moves AS (
    UPDATE chat_members cm
       SET last_read_message_id = GREATEST(cm.last_read_message_id, x.id),
           last_delivered_message_id = GREATEST(cm.last_delivered_message_id, x.id)
      FROM (SELECT f.chat, f.sender, max(f.id) AS id FROM fresh f GROUP BY f.chat, f.sender) x
     WHERE cm.chat_id = x.chat AND cm.user_id = x.sender
  )
)sql";
constexpr char kSendResultWithMoved[] =
    R"sql(  SELECT f.id, f.chat, f.sender, u.username, f.txt, f.at, NULL::BIGINT, FALSE, f.fwd, f.cid,
         TRUE, f.n, mv.read_moved
    FROM fresh f JOIN users u ON u.id = f.sender JOIN moved mv ON mv.n = f.n
)sql";
constexpr char kSendRetries[] = R"sql(  UNION ALL
  SELECT m.id, m.chat_id, COALESCE(m.sender_id, 0), COALESCE(u.username, ''), m.text,
         m.created_at, m.edited_at, m.is_deleted, m.forwarded_from, m.client_id, FALSE, ok.n,
         FALSE
    FROM ok JOIN messages m ON m.id = ok.known_id LEFT JOIN users u ON u.id = m.sender_id;
END
$$;
)sql";
constexpr auto k0010_send_reports_read =
    joined(kSendFunctionDrop, kSendFunctionStart, kSendMembers, kSendFresh, kSendWrites, kSendMoved,
           kSendMemberMoves, kSendResultWithMoved, kSendRetries);

// Migration 10's function joined each new message to the `moved` part by its number. The
// planner inlines a part used once and, expecting one row from every part, ran that join
// as a nested loop: the window over the whole batch was computed again for every message,
// O(n^2) in the batch (of 256 sends: 103 of the statement's 108 ms, most of PostgreSQL's
// time in a closed loop of sends). The same windows now run once, in the final SELECT.
constexpr char kSendResultWindowed[] =
    R"sql(  SELECT f.id, f.chat, f.sender, u.username, f.txt, f.at, NULL::BIGINT, FALSE, f.fwd, f.cid,
         TRUE, f.n,
         -- Whether a send carries its sender's read watermark past someone else's message
         -- (migration 10's `moved`).
         GREATEST(f.prev_read, max(f.id) OVER (PARTITION BY f.chat, f.sender ORDER BY f.n
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
           < GREATEST(f.prev_last, max(f.id) OVER (PARTITION BY f.chat ORDER BY f.n
                                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
    FROM fresh f JOIN users u ON u.id = f.sender
)sql";
constexpr auto k0011_send_windows_once =
    joined(kSendFunctionDrop, kSendFunctionStart, kSendMembers, kSendFresh, kSendWrites,
           kSendMemberMoves, kSendResultWindowed, kSendRetries);

// A message deleted for everyone loses its pin (PgChatStore::delete_message); the pins
// that messages deleted before that rule kept go too.
constexpr const char* k0012_unpin_deleted_messages = R"sql(
DELETE FROM pins p USING messages m WHERE m.id = p.message_id AND m.is_deleted;
)sql";

// Who hid a message, found by the message (the key starts with the user): each edit,
// deletion or pin reads them, and so does a catch-up's page of such events. Through the
// chat's members instead, the planner chose, in a 10,000-member group with a million hides
// elsewhere, a merge join over every member's hides (0.2-1.35 s).
constexpr const char* k0014_hidden_messages_by_message = R"sql(
CREATE INDEX hidden_messages_message ON hidden_messages(chat_id, message_id);
)sql";

// A chat-wide deletion, pin or unpin names its message, so that the members who hid the
// message do not get it (store::skips_hiders), in replays and from a node catching up. Such
// events logged before their message was named get it from their payload.
constexpr const char* k0015_event_message_ids = R"sql(
UPDATE events SET message_id = (payload::json ->> 'message_id')::bigint
  WHERE message_id IS NULL AND user_id IS NULL AND type IN ('delete', 'pin', 'unpin');
)sql";

// A send's created_at is past its chat's previous message's, by a microsecond at least, as
// on SQLite (chat_store.cpp, send_message): the clock is read before a send joins a batch,
// so a send in a later batch may carry an earlier time than one in the batch before it, and
// clients that sort a chat by created_at saw another order than its ids'. Each chat's sends
// in a batch take the later of their own time and a microsecond past the one before them
// (the chat's newest message before the batch: its last_activity_at, which every send sets
// to its created_at), but by no more than a minute past their own (kMaxSendTimeLead, in
// store/chat_store.hpp). The function is migration 11's with that; its parameters and
// result are unchanged, so nodes of the version before keep calling it.
constexpr char kSendFunctionReplace[] = R"sql(
CREATE OR REPLACE )sql";
constexpr char kSendPreviousTime[] = R"sql(,
           c.last_activity_at AS prev_at)sql";
constexpr char kSendFreshInTimeOrder[] = R"sql(  ), numbered AS (
    SELECT ok.*, row_number() OVER (PARTITION BY ok.chat ORDER BY ok.n) AS r
      FROM ok WHERE ok.known_id IS NULL
  ), fresh AS (
    -- The r-th send of a chat in the batch: at least r microseconds past the chat's newest
    -- message, and past each earlier send of the chat by the sends between them; at most a
    -- minute past its own clock (a send's clock is the least a running maximum gives it).
    SELECT nb.n, nb.chat, nb.sender, nb.txt, nb.fwd, nb.cid, nb.words, nb.base, nb.known_id,
           nb.prev_read, nb.prev_last, nb.base + nb.r AS ordinal,
           LEAST(GREATEST(max(nb.at - nb.r) OVER w + nb.r, nb.prev_at + nb.r),
                 nb.at + 60000000) AS at,
           -- Taken in the window's order: each chat's ids rise with its ordinals.
           nextval('messages_id_seq') AS id
      FROM numbered nb
    WINDOW w AS (PARTITION BY nb.chat ORDER BY nb.n ROWS UNBOUNDED PRECEDING)
)sql";
static_assert(kMaxSendTimeLead == 60'000'000, "migration 16 has the lead written out");
constexpr auto k0016_send_times_in_order =
    joined(kSendFunctionReplace, kSendFunctionStart, kSendPreviousTime, kSendMembers,
           kSendFreshInTimeOrder, kSendWrites, kSendMemberMoves, kSendResultWindowed, kSendRetries);

// Search folds the Latin letters SQLite's tokenizer folds past U+017F (Latin Extended-B,
// and U+1E00..U+1EFF: Vietnamese and others), "ſ", the micro sign and Greek symbol forms, as
// the SQLite store does (unicode::without_diacritic); before, they were kept. The index's
// words of the messages stored before are folded the same way, a letter at a time, so that
// "viet" finds "Việt" stored then too; so are the letters folded before (U+00C0..U+017E,
// "ё", "й"), which the words indexed by versions that folded none still hold. The vectors
// rewritten lose their words' positions, which no search reads (words and prefixes that
// must all be in a message, never a phrase). Every letter without_diacritic changes below
// U+2000, and the letter each becomes, in the same order:
constexpr const char* k0017_search_folds_like_sqlite = R"sql(
UPDATE messages m
   SET search = array_to_tsvector(ARRAY(
       SELECT DISTINCT translate(w.lexeme, f.letters, f.bases) FROM unnest(m.search) AS w))
  FROM (SELECT
         'µÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãä' ||
         'åçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉ' ||
         'ĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩ' ||
         'ĪīĬĭĮįİıĴĵĶķĹĺĻļĽľĿŀŁłŃńŅņŇňŉŌōŎ' ||
         'ŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰ' ||
         'űŲųŴŵŶŷŸŹźŻżŽžſƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙ' ||
         'ǚǛǜǞǟǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋ' ||
         'ȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳ' ||
         'ϐϑϕϖϰϱϵЁЙйёḀḁḂḃḄḅḆḇḈḉḊḋḌḍḎḏḐḑḒḓḔ' ||
         'ḕḖḗḘḙḚḛḜḝḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḮḯḰḱḲḳḴ' ||
         'ḵḶḷḸḹḺḻḼḽḾḿṀṁṂṃṄṅṆṇṈṉṊṋṌṍṎṏṐṑṒṓṔ' ||
         'ṕṖṗṘṙṚṛṜṝṞṟṠṡṢṣṤṥṦṧṨṩṪṫṬṭṮṯṰṱṲṳṴ' ||
         'ṵṶṷṸṹṺṻṼṽṾṿẀẁẂẃẄẅẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔ' ||
         'ẕẖẗẘẙẛẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹ' ||
         'ẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộ' ||
         'ỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹ' ||
         'ι'
         AS letters,
         'μAAAAAACEEEEIIIINOOOOOUUUUYaaaaa' ||
         'aceeeeiiiinooooouuuuyyAaAaAaCcCc' ||
         'CcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIi' ||
         'IiIiIiIiJjKkLlLlLlLlLlNnNnNnnOoO' ||
         'oOoRrRrRrSsSsSsSsTtTtTtUuUuUuUuU' ||
         'uUuWwYyYZzZzZzsOoUuAaIiOoUuUuUuU' ||
         'uUuAaGgKkOoOojGgNnAaAaAaEeEeIiIi' ||
         'OoOoRrRrUuUuSsTtHhAaEeOoOoOoOoYy' ||
         'βθφπκρεЕИиеAaBbBbBbCcDdDdDdDdDdE' ||
         'eEeEeEeEeFfGgHhHhHhHhHhIiIiKkKkK' ||
         'kLlLlLlLlMmMmMmNnNnNnNnOoOoOoOoP' ||
         'pPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuU' ||
         'uUuUuUuVvVvWwWwWwWwWwXxXxYyZzZzZ' ||
         'zhtwysAaAaAaAaAaAaAaAaAaAaAaAaEe' ||
         'EeEeEeEeEeEeEeIiIiOoOoOoOoOoOoOo' ||
         'OoOoOoOoOoUuUuUuUuUuUuUuYyYyYyYy' ||
         'ι'
         AS bases) f
 WHERE m.search::text ~ ('[' || f.letters || ']');
)sql";

// Nodes of the previous version keep serving while a migration runs and until each is
// restarted (README: Upgrades), so a migration must leave them working: it adds tables,
// columns, indexes and functions, and never renames or drops what that version uses or
// changes a column's meaning. A function's result may gain columns at its end only: a node
// whose prepared statement it invalidates prepares it again (PgError::stale_plan) and
// reads the columns it knows by position; so a migration that widens a result ships only
// once the version it upgrades from prepares again (PgConnection::prepare, from the
// version this rule came with). Anything else is a new function under a new name, the old
// one dropped a version later. (Migration 10 predates this rule.)
constexpr PgMigration kMigrations[] = {
    {1, "users_and_refresh_tokens", k0001_users},
    {2, "chats_messages_events", k0002_chats},
    {3, "send_function", k0003_send_function},
    {4, "ended_sessions", k0004_ended_sessions},
    {5, "send_batch_function", k0005_send_batch_function},
    {6, "hot_watermarks", k0006_hot_watermarks},
    {7, "logged_message_text", k0007_logged_message_text},
    {8, "refresh_token_sessions", k0008_refresh_token_sessions},
    {9, "no_message_event_index", k0009_no_message_event_index},
    {10, "send_reports_read", k0010_send_reports_read.data()},
    {11, "send_windows_once", k0011_send_windows_once.data()},
    {12, "unpin_deleted_messages", k0012_unpin_deleted_messages},
    {13, "username_keys_by_upper_case", chat::store::kUsernameKeysByUpperCase},
    {14, "hidden_messages_by_message", k0014_hidden_messages_by_message},
    {15, "event_message_ids", k0015_event_message_ids},
    {16, "send_times_in_order", k0016_send_times_in_order.data()},
    {17, "search_folds_like_sqlite", k0017_search_folds_like_sqlite},
};

// Any number of chatd processes may migrate at once; they queue on this lock.
constexpr const char* kLock = "SELECT pg_advisory_lock(7316001)";
constexpr const char* kUnlock = "SELECT pg_advisory_unlock(7316001)";
constexpr const char* kCreateTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at BIGINT NOT NULL)";
constexpr const char* kApplied = "SELECT 1 FROM schema_migrations WHERE version = $1";
constexpr const char* kRecord =
    "INSERT INTO schema_migrations(version, name, applied_at) VALUES ($1, $2, $3)";

}  // namespace

std::span<const PgMigration> pg_migrations() {
  return kMigrations;
}

boost::asio::awaitable<std::vector<MigrationStatus>> migrate(PgConnection& conn) {
  std::vector<MigrationStatus> applied;
  co_await conn.query(kLock);
  std::exception_ptr failure;
  try {
    co_await conn.query(kCreateTable);
    for (const PgMigration& m : pg_migrations()) {
      PgParams version{std::to_string(m.version)};
      auto done = co_await conn.query(kApplied, std::move(version));
      if (done.rows() > 0) continue;
      const std::string script = "BEGIN;\n" + std::string(m.sql);
      co_await conn.script(script);
      PgParams row{std::to_string(m.version), std::string(m.name), std::to_string(now_micros())};
      co_await conn.query(kRecord, std::move(row));
      co_await conn.query("COMMIT");
      applied.push_back({m.version, m.name, true});
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    // A failed migration rolls back whole. (If the connection itself is gone, so are the
    // transaction and the session's lock.)
    if (conn.healthy()) {
      co_await conn.query("ROLLBACK");
      co_await conn.query(kUnlock);
    }
    std::rethrow_exception(failure);
  }
  co_await conn.query(kUnlock);
  co_return applied;
}

}  // namespace chat::store::postgres
