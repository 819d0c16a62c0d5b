// The SQLite schema, as numbered migrations applied in order. A migration, once released,
// is never edited: changes come as a new number.
#pragma once

#include <span>

namespace chat::store::sqlite {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

std::span<const Migration> migrations();

}  // namespace chat::store::sqlite
