#include "http/query_string.hpp"

#include "common/unicode.hpp"

namespace chat::http {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool starts_escape(std::string_view s, std::size_t i) {
  return i + 2 < s.size() && s[i] == '%' && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0;
}

// unquote_plus(s, errors="replace"). The escapes' bytes and the text around them (valid
// UTF-8, so an escape can never complete a character of it) are decoded together.
std::string unquote_plus(std::string_view s) {
  std::string bytes;
  bytes.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      bytes.push_back(' ');
    } else if (starts_escape(s, i)) {
      bytes.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      bytes.push_back(s[i]);
    }
  }
  return unicode::replace_invalid(bytes);
}

bool lenient_character(char c) {
  switch (c) {
    case '"':
    case '#':
    case '<':
    case '>':
    case '[':
    case '\\':
    case ']':
    case '^':
    case '`':
    case '{':
    case '|':
    case '}':
      return true;
    default:
      return false;
  }
}

}  // namespace

QueryPairs parse_query_pairs(std::string_view text) {
  std::string latin1;
  if (!unicode::is_valid_utf8(text)) {
    latin1 = unicode::from_latin1(text);
    text = latin1;
  }
  QueryPairs out;
  while (!text.empty()) {
    const std::size_t amp = text.find('&');
    const std::string_view piece = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
    if (piece.empty()) continue;
    const std::size_t eq = piece.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(unquote_plus(piece), std::string());
    } else {
      out.emplace_back(unquote_plus(piece.substr(0, eq)), unquote_plus(piece.substr(eq + 1)));
    }
  }
  return out;
}

std::string escape_lenient_target(std::string_view target) {
  // From the path on: in the absolute form, '[' and ']' belong to the authority's address.
  std::size_t from = 0;
  if (!target.starts_with('/')) {
    const std::size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) return std::string(target);
    from = target.find_first_of("/?", scheme_end + 3);
    if (from == std::string_view::npos) return std::string(target);
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out(target.substr(0, from));
  out.reserve(target.size() + 16);
  for (std::size_t i = from; i < target.size(); ++i) {
    const char c = target[i];
    if (lenient_character(c) || (c == '%' && !starts_escape(target, i))) {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0x0F]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace chat::http
