// Reading the rows that several SQLite stores select (columns as in store/sql_columns.hpp).
#pragma once

#include <string>
#include <vector>

#include "store/chat_records.hpp"
#include "store/sqlite/connection.hpp"
#include "store/user_store.hpp"

namespace chat::store::sqlite {

UserRecord read_user(const Statement& s);
ChatRecord read_chat(const Statement& s);
MemberRecord read_member(const Statement& s);
MessageRecord read_message(const Statement& s);

// An FTS5 query where every term must match, as a whole word or a prefix:
// "term1"* AND "term2"*. Terms are letters and digits only (chat/search_query), so the
// quoting cannot be escaped.
std::string fts_match(const std::vector<std::string>& terms);

}  // namespace chat::store::sqlite
