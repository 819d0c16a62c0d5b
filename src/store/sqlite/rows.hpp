// Reading the rows that several SQLite stores select (columns as in store/sql_columns.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/chat_records.hpp"
#include "store/sqlite/connection.hpp"
#include "store/user_store.hpp"

// The chat `chat_id` names (an SQL expression) is not a deleted one whose rows are still
// being removed (chat_store.cpp: kRetireChat): for reads that do not go through its members.
#define CHAT_SQL_NOT_PURGING(chat_id) chat_id " NOT IN (SELECT id FROM chats WHERE purging = 1)"

namespace chat::store::sqlite {

UserRecord read_user(const Statement& s);
ChatRecord read_chat(const Statement& s);
MemberRecord read_member(const Statement& s);
MessageRecord read_message(const Statement& s);

// An FTS5 query where every term must match the text, as a whole word or a prefix:
// text : ("term1"* AND "term2"*), folded as the index's text is (migration 10). Terms are
// letters and digits only (chat/search_query), so the quoting cannot be escaped. With
// `chats`, only messages of those chats match (chat_id : (1 OR 2)): the index then walks
// the matches of those chats alone.
std::string fts_match(const std::vector<std::string>& terms,
                      const std::vector<std::int64_t>& chats = {});

}  // namespace chat::store::sqlite
