// Reading the rows that several PostgreSQL stores select (columns as in
// store/sql_columns.hpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/chat_records.hpp"
#include "store/postgres/pg_database.hpp"
#include "store/user_store.hpp"

namespace chat::store::postgres {

UserRecord read_user(const PgResult& r, int row);
ChatRecord read_chat(const PgResult& r, int i);
MemberRecord read_member(const PgResult& r, int i);
MessageRecord read_message(const PgResult& r, int i);

// A tsquery where every term must match as a word or a prefix: term1:* & term2:*, accents
// stripped as the index strips them. Terms are letters and digits only
// (chat/search_query), so they cannot carry tsquery operators. Nullopt when a term is
// longer than PostgreSQL indexes a word (2047 bytes or more): no message can match it,
// and to_tsquery would drop it and search for the other terms alone.
std::optional<std::string> tsquery_prefixes(const std::vector<std::string>& terms);

template <class T, class Read>
std::vector<T> all_rows(const PgResult& r, Read read) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) out.push_back(read(r, i));
  return out;
}

template <class Read>
auto first_row(const PgResult& r, Read read) -> std::optional<decltype(read(r, 0))> {
  if (r.rows() == 0) return std::nullopt;
  return read(r, 0);
}

}  // namespace chat::store::postgres
