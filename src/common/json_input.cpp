#include "common/json_input.hpp"

#include <boost/json/parse.hpp>
#include <boost/system/errc.hpp>

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

// Python reads no integer of more digits (int_max_str_digits): json.loads fails, and DRF
// answers 400 "JSON parse error".
constexpr std::size_t kMaxIntegerDigits = 4300;

struct Quoted {
  std::optional<std::string> text;  // nullopt: nothing to quote (nearly always)
  bool too_long = false;            // an integer Python refuses to read
};

// `text` with every too-wide integer in a value's place inside an object or array in
// quotes. Only well-formed integers where a value may stand are touched, so a text that
// is not JSON (a number as an object's key, say) stays as wrong as it was.
Quoted quote_wide_integers(std::string_view text) {
  Quoted out;
  // A wide integer has 20 digits or more, and nearly every text has fewer digits than
  // that in all: counted first, in a loop the compiler vectorises, they rule it out.
  std::size_t digit_count = 0;
  for (const char c : text) digit_count += static_cast<unsigned char>(c - '0') < 10 ? 1 : 0;
  if (digit_count < 20) return out;
  std::size_t copied = 0;
  std::string open;  // the containers around, innermost last: '{' or '['
  char last = 0;     // the last of `{[,:` seen: whether a value may come next
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {  // a string, escapes and all
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      ++i;
      last = 0;
      continue;
    }
    if (c == '[' || c == '{') open.push_back(c);
    if ((c == ']' || c == '}') && !open.empty()) open.pop_back();
    if (c == '[' || c == '{' || c == ',' || c == ':') last = c;
    if (c != '-' && !is_digit(c)) {
      ++i;
      continue;
    }
    const bool value_place =
        !open.empty() && (last == ':' || last == '[' || (last == ',' && open.back() == '['));
    last = 0;
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
    if (integer && digits.size() > kMaxIntegerDigits) {
      out.too_long = true;
      return out;
    }
    if (integer && value_place && !digits.empty() && digits.front() != '0' &&
        too_wide(digits, c == '-')) {
      if (!out.text) out.text.emplace();
      out.text->append(text.substr(copied, i - copied));
      out.text->push_back('"');
      out.text->append(text.substr(i, end - i));
      out.text->push_back('"');
      copied = end;
    }
    i = std::max(end, i + 1);
  }
  if (out.text) out.text->append(text.substr(copied));
  return out;
}

}  // namespace

boost::json::value parse_client_json(std::string_view text, int max_depth,
                                     boost::system::error_code& ec) {
  boost::json::parse_options opts;
  opts.max_depth = static_cast<std::size_t>(max_depth);
  const auto quoted = quote_wide_integers(text);
  if (quoted.too_long) {
    ec = boost::system::errc::make_error_code(boost::system::errc::value_too_large);
    return nullptr;
  }
  if (quoted.text) return boost::json::parse(*quoted.text, ec, {}, opts);
  return boost::json::parse(text, ec, {}, opts);
}

}  // namespace chat
