// Column lists that the SQLite and PostgreSQL stores both select, in the order their row
// readers (sqlite/rows, postgres/pg_rows) read them. The SQL is the same in both dialects.
#pragma once

#define CHAT_SQL_USER_COLUMNS \
  "id, username, email, password_hash, is_active, is_staff, is_superuser, date_joined, last_seen"

#define CHAT_SQL_CHAT_COLUMNS \
  "c.id, c.type, c.name, c.created_at, c.last_message_id, c.last_activity_at"

#define CHAT_SQL_MEMBER_COLUMNS                                          \
  "m.user_id, u.username, m.role, m.joined_at, m.last_read_message_id, " \
  "m.last_delivered_message_id"

// With `m` the messages table and `username` the SQL of its sender's name.
#define CHAT_SQL_MESSAGE_COLUMNS_NAMED(username)         \
  "m.id, m.chat_id, COALESCE(m.sender_id, 0), " username \
  ", m.text, m.created_at, "                             \
  "m.edited_at, m.is_deleted, m.forwarded_from, m.client_id"
// With `u` the sender (LEFT JOIN users u ON u.id = m.sender_id).
#define CHAT_SQL_MESSAGE_COLUMNS CHAT_SQL_MESSAGE_COLUMNS_NAMED("COALESCE(u.username, '')")

// Who hid the message each of the events `seqs` (the dialect's list of seqs) is about:
// (seq, user) rows in seq order (store::apply_hiders), through hidden_messages(chat_id,
// message_id).
#define CHAT_SQL_HIDERS_OF_EVENTS(seqs)                                                    \
  "SELECT e.seq, h.user_id FROM events e JOIN hidden_messages h ON h.chat_id = e.chat_id " \
  "AND h.message_id = e.message_id WHERE e.seq IN " seqs " ORDER BY e.seq, h.user_id"

// A chat (`c`) with its member and message counts, as staff list chats.
#define CHAT_SQL_OVERVIEW_COLUMNS                                  \
  CHAT_SQL_CHAT_COLUMNS                                            \
  ", (SELECT count(*) FROM chat_members x WHERE x.chat_id = c.id)" \
  ", (SELECT count(*) FROM messages x WHERE x.chat_id = c.id)"
