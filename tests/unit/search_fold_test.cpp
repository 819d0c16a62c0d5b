// The letters of PostgreSQL's search index (unicode::to_lower, then without_diacritics)
// against SQLite's unicode61 tokenizer with remove_diacritics 2, the index of the other
// store, code point by code point: a search must find the same messages on either.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <map>
#include <string>

#include "common/unicode.hpp"

namespace {

using namespace chat;

void exec(sqlite3* db, const char* sql) {
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
}

// Each code point of U+0080..U+FFFF (surrogates aside) as the SQLite store indexes it
// alone: "ё" and "й" folded by the store (search_folded_cyrillic), then the tokenizer.
// Those that are no token character (spaces, punctuation, marks) are left out.
std::map<char32_t, std::string> sqlite_tokens() {
  std::map<char32_t, std::string> out;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  exec(db,
       "CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'unicode61 remove_diacritics 2');"
       "CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance'); BEGIN");
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO t(rowid, x) VALUES (?1, ?2)", -1, &insert, nullptr);
  for (char32_t cp = 0x80; cp <= 0xFFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const std::string text = unicode::search_folded_cyrillic(unicode::encode({cp}));
    sqlite3_bind_int64(insert, 1, cp);
    sqlite3_bind_text(insert, 2, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(insert), SQLITE_DONE);
    sqlite3_reset(insert);
  }
  sqlite3_finalize(insert);
  exec(db, "COMMIT");
  sqlite3_stmt* terms = nullptr;
  sqlite3_prepare_v2(db, "SELECT doc, term FROM v", -1, &terms, nullptr);
  while (sqlite3_step(terms) == SQLITE_ROW) {
    out[static_cast<char32_t>(sqlite3_column_int64(terms, 0))] =
        reinterpret_cast<const char*>(sqlite3_column_text(terms, 1));
  }
  sqlite3_finalize(terms);
  sqlite3_close(db);
  return out;
}

TEST(SearchFold, LettersFoldAsSqlitesTokenizerFoldsThem) {
  const auto tokens = sqlite_tokens();
  ASSERT_GT(tokens.size(), 40'000U);
  // Folded here and kept by SQLite: letters with a stroke or a dot, which PostgreSQL's index
  // folded from its start (its words stay found by what found them).
  const std::map<char32_t, std::string> folded_here_only = {
      {0x0110, "d"}, {0x0111, "d"}, {0x0126, "h"}, {0x0127, "h"}, {0x0131, "i"}, {0x013F, "l"},
      {0x0140, "l"}, {0x0141, "l"}, {0x0142, "l"}, {0x0149, "n"}, {0x0166, "t"}, {0x0167, "t"}};
  int folded = 0;
  for (const auto& [cp, sqlite] : tokens) {
    const std::string text = unicode::encode({cp});
    const std::string lower = unicode::to_lower(text);
    const std::string ours = unicode::without_diacritics(lower);
    if (auto only = folded_here_only.find(cp); only != folded_here_only.end()) {
      EXPECT_EQ(ours, only->second) << "U+" << std::hex << static_cast<unsigned>(cp);
      continue;
    }
    if (cp == 0x03C2) continue;  // ς: SQLite's σ; PostgreSQL's search asks for both spellings
    if (sqlite == text) {
      // Kept as it is by SQLite, whose case tables miss some capitals the server's lower
      // (Cherokee, Georgian Mtavruli): no fold here either.
      EXPECT_EQ(ours, lower) << "U+" << std::hex << static_cast<unsigned>(cp);
      continue;
    }
    if (ours != lower) ++folded;
    EXPECT_EQ(ours, sqlite) << "U+" << std::hex << static_cast<unsigned>(cp);
  }
  EXPECT_GT(folded, 450);  // the Latin letters with marks, both cases, and the Greek forms
  // The tables fold capitals to capitals, for text not lower-cased first.
  struct Range {
    char32_t first, end;
  };
  for (const Range r : {Range{0xC0, 0x250}, Range{0x1E00, 0x1F00}}) {
    for (char32_t cp = r.first; cp < r.end; ++cp) {
      const std::string text = unicode::encode({cp});
      EXPECT_EQ(unicode::to_lower(unicode::without_diacritics(text)),
                unicode::without_diacritics(unicode::to_lower(text)))
          << "U+" << std::hex << static_cast<unsigned>(cp);
    }
  }
}

}  // namespace
