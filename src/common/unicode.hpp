// The little Unicode the server needs without a full ICU: UTF-8 decoding and validation,
// character counts as Python counts them, and the case folding and letter classes of
// glibc's C.UTF-8 tables (so "Аня" and "аня" are the same username).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::unicode {

// Code points of a UTF-8 string, or nullopt when it is not valid UTF-8 (overlongs,
// surrogates and values past U+10FFFF are invalid).
std::optional<std::vector<char32_t>> decode(std::string_view utf8);
bool is_valid_utf8(std::string_view utf8);
std::string encode(const std::vector<char32_t>& code_points);
void append_utf8(std::string& out, char32_t cp);
// Bytes decoded as Python's bytes.decode("utf-8", "replace") does: each maximal invalid
// subpart (a stray byte, or the valid start of a sequence cut short) becomes one U+FFFD.
std::string replace_invalid(std::string_view bytes);
// Bytes read as Latin-1 (bytes.decode("iso-8859-1")): each is the code point of its value.
std::string from_latin1(std::string_view bytes);

// Number of code points (the length Python's len() gives). Input must be valid UTF-8.
std::size_t length(std::string_view utf8);
// The first `code_points` code points (Python's s[:n]), never a sequence cut in two.
// Input must be valid UTF-8.
std::string_view prefix(std::string_view utf8, std::size_t code_points);

// Lower-cased copy, code point by code point. Input must be valid UTF-8.
std::string to_lower(std::string_view utf8);
// The lower case of each code point's upper case: two texts get the same key exactly when
// their upper cases are equal (SQL's UPPER(a) = UPPER(b), Django's `iexact` on
// PostgreSQL), so "ς" and "σ" (both "Σ"), or "ı" and "i", are one; to_lower keeps them apart.
std::string caseless_key(std::string_view utf8);

bool is_alnum(char32_t cp);
// The words of a text as search sees them: runs of letters and digits, as written.
// Input must be valid UTF-8 (otherwise: none).
std::vector<std::vector<char32_t>> words(std::string_view utf8);
bool is_space(char32_t cp);

// The letter without its accent, as search folds it: Latin letters ("é" -> "e", "ệ" -> "e",
// "ǎ" -> "a": each one SQLite's unicode61 tokenizer folds, and Đ, Ħ, ı, Ŀ, Ł, ŉ, Ŧ, which it
// keeps), the micro sign and Greek symbol forms as the letters SQLite takes them for, and
// Cyrillic "ё"/"й" -> "е"/"и" (which unicode61 keeps: SQLite's store folds them itself,
// search_folded_cyrillic). Others unchanged.
char32_t without_diacritic(char32_t cp);
std::string without_diacritics(std::string_view utf8);
// `utf8` with "ё", "Ё", "й", "Й" as "е", "Е", "и", "И": the Cyrillic folds of
// without_diacritics that SQLite's tokenizer does not make.
std::string search_folded_cyrillic(std::string_view utf8);

// Python's str.strip(), which DRF's CharField trims with: removes at both ends what
// str.isspace() calls whitespace (ASCII whitespace, U+001C-U+001F, U+0085 and every
// Unicode space separator, no-break ones too). Invalid UTF-8 comes back as it is.
std::string_view trim(std::string_view utf8);
// Python's str.split() with no separator: the runs between str.isspace() characters.
// Invalid UTF-8 comes back as one part.
std::vector<std::string_view> split(std::string_view utf8);

}  // namespace chat::unicode
