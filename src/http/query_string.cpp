#include "http/query_string.hpp"

#include <array>

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
  // The text between escapes and '+' goes in whole (a token is one run).
  for (std::size_t i = 0; i < s.size();) {
    std::size_t special = i;
    while (special < s.size() && s[special] != '+' && s[special] != '%') ++special;
    bytes.append(s.substr(i, special - i));
    i = special;
    if (i == s.size()) break;
    if (s[i] == '+') {
      bytes.push_back(' ');
      i += 1;
    } else if (starts_escape(s, i)) {
      bytes.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 3;
    } else {
      bytes.push_back('%');
      i += 1;
    }
  }
  if (unicode::is_valid_utf8(bytes)) return bytes;
  return unicode::replace_invalid(bytes);
}

// The characters a lenient client leaves unescaped in a target, and '%' (which may or may
// not start an escape), as a table: a target is looked through a byte at a time.
constexpr std::array<bool, 256> escape_candidates() {
  std::array<bool, 256> t{};
  for (const char c : std::string_view("\"#<>[\\]^`{|}%")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr auto kEscapeCandidate = escape_candidates();

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
  std::size_t first = from;
  while (first < target.size() && !kEscapeCandidate[static_cast<unsigned char>(target[first])]) {
    ++first;
  }
  std::string out(target.substr(0, first));
  if (first == target.size()) return out;  // the usual target: nothing to escape
  out.reserve(target.size() + 16);
  for (std::size_t i = first; i < target.size(); ++i) {
    const char c = target[i];
    if (!kEscapeCandidate[static_cast<unsigned char>(c)] ||
        (c == '%' && starts_escape(target, i))) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0x0F]);
    }
  }
  return out;
}

}  // namespace chat::http
