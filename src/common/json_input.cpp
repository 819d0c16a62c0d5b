#include "common/json_input.hpp"

#include <boost/json/parse.hpp>

#include <optional>
#include <string>

namespace chat {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Whether an integer's digits (no sign, no leading zero) are more than Boost.JSON keeps
// exactly: uint64 for a positive number, int64 for a negative one.
bool too_wide(std::string_view digits, bool negative) {
  const std::string_view limit = negative ? "9223372036854775808" : "18446744073709551615";
  if (digits.size() != limit.size()) return digits.size() > limit.size();
  return digits > limit;
}

// `text` with every too-wide integer inside a container in quotes; nullopt when it has
// none (nearly always). Only well-formed integers are touched, so a text that is not JSON
// stays as wrong as it was.
std::optional<std::string> quote_wide_integers(std::string_view text) {
  std::optional<std::string> out;
  std::size_t copied = 0;
  int depth = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {  // a string, escapes and all
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      ++i;
      continue;
    }
    if (c == '[' || c == '{') ++depth;
    if (c == ']' || c == '}') --depth;
    if (c != '-' && !is_digit(c)) {
      ++i;
      continue;
    }
    // A number: -? digits (. digits)? ([eE] [+-]? digits)?
    std::size_t end = i + (c == '-' ? 1 : 0);
    const std::size_t first_digit = end;
    while (end < text.size() && is_digit(text[end])) ++end;
    const std::string_view digits = text.substr(first_digit, end - first_digit);
    bool integer = true;
    if (end < text.size() && text[end] == '.') {
      integer = false;
      for (++end; end < text.size() && is_digit(text[end]);) ++end;
    }
    if (end < text.size() && (text[end] == 'e' || text[end] == 'E')) {
      integer = false;
      ++end;
      if (end < text.size() && (text[end] == '+' || text[end] == '-')) ++end;
      while (end < text.size() && is_digit(text[end])) ++end;
    }
    if (integer && depth > 0 && !digits.empty() && digits.front() != '0' &&
        too_wide(digits, c == '-')) {
      if (!out) out.emplace();
      out->append(text.substr(copied, i - copied));
      out->push_back('"');
      out->append(text.substr(i, end - i));
      out->push_back('"');
      copied = end;
    }
    i = std::max(end, i + 1);
  }
  if (out) out->append(text.substr(copied));
  return out;
}

}  // namespace

boost::json::value parse_client_json(std::string_view text, int max_depth,
                                     boost::system::error_code& ec) {
  boost::json::parse_options opts;
  opts.max_depth = static_cast<std::size_t>(max_depth);
  if (auto quoted = quote_wide_integers(text)) return boost::json::parse(*quoted, ec, {}, opts);
  return boost::json::parse(text, ec, {}, opts);
}

}  // namespace chat
