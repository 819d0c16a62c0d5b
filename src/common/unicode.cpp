#include "common/unicode.hpp"

#include <locale.h>
#include <clocale>
#include <cstdint>
#include <cstring>
#include <cwctype>

namespace chat::unicode {
namespace {

// glibc's C.UTF-8 locale carries the full Unicode case and class tables. It is opened once
// and only read afterwards, so the *_l functions are safe from every thread.
locale_t utf8_locale() {
  static const locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    return l != static_cast<locale_t>(nullptr) ? l : newlocale(LC_CTYPE_MASK, "C", nullptr);
  }();
  return loc;
}

// Decodes one code point at s[i]; returns its byte length, or 0 when invalid.
std::size_t decode_one(std::string_view s, std::size_t i, char32_t& out) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    out = b0;
    return 1;
  }
  std::size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  out = cp;
  return len;
}

// Where the run of ASCII bytes from s[i] ends, looked at eight bytes at a time: most text
// chatd checks (request targets, tokens, JSON keys) is ASCII.
std::size_t skip_ascii(std::string_view s, std::size_t i) {
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  for (; i + sizeof(std::uint64_t) <= s.size(); i += sizeof(std::uint64_t)) {
    std::uint64_t word = 0;
    std::memcpy(&word, s.data() + i, sizeof word);
    if ((word & kHighBits) != 0) break;
  }
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  return i;
}

}  // namespace

std::optional<std::vector<char32_t>> decode(std::string_view utf8) {
  std::vector<char32_t> out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size();) {
    char32_t cp = 0;
    const std::size_t n = decode_one(utf8, i, cp);
    if (n == 0) return std::nullopt;
    out.push_back(cp);
    i += n;
  }
  return out;
}

bool is_valid_utf8(std::string_view utf8) {
  for (std::size_t i = skip_ascii(utf8, 0); i < utf8.size(); i = skip_ascii(utf8, i)) {
    char32_t cp = 0;
    const std::size_t n = decode_one(utf8, i, cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

namespace {

// The bytes of the longest start of a well-formed sequence at s[i] (at least 1): a lead
// byte and the continuation bytes that could still follow it (Unicode's "maximal subpart",
// which Python's decoder replaces as one character).
std::size_t invalid_span(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
  } else {
    return 1;
  }
  std::size_t n = 1;
  while (n < len && i + n < s.size()) {
    const auto b = static_cast<unsigned char>(s[i + n]);
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (n == 1) {  // the second byte rules out overlongs, surrogates and values past U+10FFFF
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    }
    if (b < lo || b > hi) break;
    ++n;
  }
  return n;
}

}  // namespace

std::string replace_invalid(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t ascii_end = skip_ascii(bytes, i);
    out.append(bytes.substr(i, ascii_end - i));
    i = ascii_end;
    if (i == bytes.size()) break;
    char32_t cp = 0;
    const std::size_t n = decode_one(bytes, i, cp);
    if (n == 0) {
      append_utf8(out, 0xFFFD);
      i += invalid_span(bytes, i);
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string from_latin1(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (const unsigned char c : bytes) append_utf8(out, c);
  return out;
}

std::string encode(const std::vector<char32_t>& code_points) {
  std::string out;
  out.reserve(code_points.size());
  for (char32_t cp : code_points) append_utf8(out, cp);
  return out;
}

std::size_t length(std::string_view utf8) {
  std::size_t n = 0;
  for (char c : utf8) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string_view prefix(std::string_view utf8, std::size_t code_points) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    if ((static_cast<unsigned char>(utf8[i]) & 0xC0) != 0x80 && n++ == code_points) {
      return utf8.substr(0, i);
    }
  }
  return utf8;
}

namespace {

// `utf8` with each code point mapped by `map`.
template <class Map>
std::string map_code_points(std::string_view utf8, Map map) {
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size();) {
    char32_t cp = 0;
    const std::size_t n = decode_one(utf8, i, cp);
    if (n == 0) {  // not reached for validated input; keep the byte rather than lose it
      out += utf8[i++];
      continue;
    }
    append_utf8(out, map(static_cast<wint_t>(cp)));
    i += n;
  }
  return out;
}

}  // namespace

std::string to_lower(std::string_view utf8) {
  return map_code_points(
      utf8, [](wint_t c) { return static_cast<char32_t>(towlower_l(c, utf8_locale())); });
}

std::string caseless_key(std::string_view utf8) {
  return map_code_points(utf8, [](wint_t c) {
    return static_cast<char32_t>(towlower_l(towupper_l(c, utf8_locale()), utf8_locale()));
  });
}

bool is_alnum(char32_t cp) {
  return iswalnum_l(static_cast<wint_t>(cp), utf8_locale()) != 0;
}

bool is_space(char32_t cp) {
  return iswspace_l(static_cast<wint_t>(cp), utf8_locale()) != 0;
}

namespace {

// Python's str.isspace().
bool is_strip_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace

std::string_view trim(std::string_view utf8) {
  if (!is_valid_utf8(utf8)) return utf8;
  std::size_t begin = 0;
  while (begin < utf8.size()) {
    char32_t cp = 0;
    const std::size_t n = decode_one(utf8, begin, cp);
    if (!is_strip_space(cp)) break;
    begin += n;
  }
  std::size_t end = utf8.size();
  while (end > begin) {
    std::size_t start = end - 1;  // back to the first byte of the last code point
    while (start > begin && (static_cast<unsigned char>(utf8[start]) & 0xC0) == 0x80) --start;
    char32_t cp = 0;
    decode_one(utf8, start, cp);
    if (!is_strip_space(cp)) break;
    end = start;
  }
  return utf8.substr(begin, end - begin);
}

namespace {

// Base letters of U+00C0..U+024F, one character each; '.' keeps the letter (Æ, Ø, ß, Œ, ƀ...:
// not a letter with an accent). The letters SQLite's unicode61 tokenizer folds
// (remove_diacritics 2: a Latin letter whose decomposition is an ASCII letter and marks),
// and a few letters with a stroke or dot it keeps (Đ, Ħ, ı, Ŀ, Ł, ŉ, Ŧ), which
// PostgreSQL's index folded first and keeps folding, so that what it holds stays found.
constexpr std::string_view kLatinBase =
    "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.y"
    "AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIi..JjKk.LlLlLlL"
    "lLlNnNnNnn..OoOoOo..RrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUuWwYyYZzZzZzs"
    "................................Oo.............Uu..............."
    ".............AaIiOoUuUuUuUuUu.Aa......GgKkOoOo..j...Gg..NnAa...."
    "AaAaEeEeIiIiOoOoRrRrUuUuSsTt..Hh......AaEeOoOoOoOoYy............"
    "................";

// Base letters of U+1E00..U+1EFF (Latin Extended Additional: Vietnamese and others), as
// SQLite's tokenizer folds them.
constexpr std::string_view kLatinAdditionalBase =
    "AaBbBbBbCcDdDdDdDdDdEeEeEeEeEeFfGgHhHhHhHhHhIiIiKkKkKkLlLlLlLlMm"
    "MmMmNnNnNnNnOoOoOoOoPpPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuUuUuUuUuVvVv"
    "WwWwWwWwWwXxXxYyZzZzZzhtwy.s....AaAaAaAaAaAaAaAaAaAaAaAaEeEeEeEe"
    "EeEeEeEeIiIiOoOoOoOoOoOoOoOoOoOoOoOoUuUuUuUuUuUuUuYyYyYyYy......";

char32_t base_in(std::string_view table, char32_t first, char32_t cp) {
  const char base = table[cp - first];
  return base == '.' ? cp : static_cast<char32_t>(base);
}

}  // namespace

char32_t without_diacritic(char32_t cp) {
  if (cp >= 0xC0 && cp < 0xC0 + kLatinBase.size()) return base_in(kLatinBase, 0xC0, cp);
  if (cp >= 0x1E00 && cp < 0x1E00 + kLatinAdditionalBase.size()) {
    return base_in(kLatinAdditionalBase, 0x1E00, cp);
  }
  switch (cp) {
    case 0x0401:
      return 0x0415;  // Ё -> Е
    case 0x0451:
      return 0x0435;  // ё -> е
    case 0x0419:
      return 0x0418;  // Й -> И
    case 0x0439:
      return 0x0438;  // й -> и
    // Letters SQLite's tokenizer takes for others (its case folding, which the lower case
    // of the server's tables does not do): the micro sign is μ, and Greek symbol forms
    // are their letters. (Final ς is σ there too; PostgreSQL's search asks for both.)
    case 0x00B5:
      return 0x03BC;  // µ -> μ
    case 0x03D0:
      return 0x03B2;  // ϐ -> β
    case 0x03D1:
      return 0x03B8;  // ϑ -> θ
    case 0x03D5:
      return 0x03C6;  // ϕ -> φ
    case 0x03D6:
      return 0x03C0;  // ϖ -> π
    case 0x03F0:
      return 0x03BA;  // ϰ -> κ
    case 0x03F1:
      return 0x03C1;  // ϱ -> ρ
    case 0x03F5:
      return 0x03B5;  // ϵ -> ε
    case 0x1FBE:
      return 0x03B9;  // ι (prosgegrammeni) -> ι
    default:
      return cp;
  }
}

std::string without_diacritics(std::string_view utf8) {
  auto cps = decode(utf8);
  if (!cps) return std::string(utf8);
  std::string out;
  out.reserve(utf8.size());
  for (char32_t cp : *cps) append_utf8(out, without_diacritic(cp));
  return out;
}

std::string search_folded_cyrillic(std::string_view utf8) {
  // Byte pairs, each a letter (a UTF-8 lead byte never appears inside another character),
  // replaced by pairs of the same length: what SQLite's replace() does to the same text.
  std::string out(utf8);
  for (std::size_t i = skip_ascii(out, 0); i + 1 < out.size(); i = skip_ascii(out, i + 1)) {
    const auto lead = static_cast<unsigned char>(out[i]);
    const auto next = static_cast<unsigned char>(out[i + 1]);
    if (lead == 0xD1 && next == 0x91) {  // ё -> е
      out[i] = static_cast<char>(0xD0);
      out[i + 1] = static_cast<char>(0xB5);
    } else if (lead == 0xD0 && next == 0x81) {  // Ё -> Е
      out[i + 1] = static_cast<char>(0x95);
    } else if (lead == 0xD0 && next == 0xB9) {  // й -> и
      out[i + 1] = static_cast<char>(0xB8);
    } else if (lead == 0xD0 && next == 0x99) {  // Й -> И
      out[i + 1] = static_cast<char>(0x98);
    } else {
      continue;
    }
    ++i;
  }
  return out;
}

std::vector<std::vector<char32_t>> words(std::string_view utf8) {
  std::vector<std::vector<char32_t>> out;
  auto cps = decode(utf8);
  if (!cps) return out;
  std::vector<char32_t> word;
  for (char32_t cp : *cps) {
    if (is_alnum(cp)) {
      word.push_back(cp);
    } else if (!word.empty()) {
      out.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

std::vector<std::string_view> split(std::string_view utf8) {
  std::vector<std::string_view> parts;
  if (!is_valid_utf8(utf8)) {
    if (!utf8.empty()) parts.push_back(utf8);
    return parts;
  }
  std::size_t start = std::string_view::npos;  // of the part being read
  for (std::size_t i = 0; i < utf8.size();) {
    char32_t cp = 0;
    const std::size_t n = decode_one(utf8, i, cp);
    if (is_strip_space(cp)) {
      if (start != std::string_view::npos) parts.push_back(utf8.substr(start, i - start));
      start = std::string_view::npos;
    } else if (start == std::string_view::npos) {
      start = i;
    }
    i += n;
  }
  if (start != std::string_view::npos) parts.push_back(utf8.substr(start));
  return parts;
}

}  // namespace chat::unicode
