#include "common/python_number.hpp"

#include <unicode/uchar.h>
#include <boost/json/value.hpp>

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "common/unicode.hpp"

namespace chat {

std::optional<std::int64_t> integer_field(const boost::json::value& v) {
  if (v.is_int64()) return v.get_int64();
  // DRF's IntegerField: int(re.sub(r"\.0*\s*$", "", str(data))).
  std::string text;
  if (v.is_double()) {
    text = python_float(v.get_double());
  } else if (v.is_string()) {
    text = v.get_string();
  } else {
    return std::nullopt;  // uint64 past int64, bool, null, list, object
  }
  if (const auto dot = text.rfind('.'); dot != std::string::npos) {
    const std::string_view rest = std::string_view(text).substr(dot + 1);
    const auto zeros = std::min(rest.find_first_not_of('0'), rest.size());
    if (unicode::trim(rest.substr(zeros)).empty()) text.resize(dot);
  }
  bool saturated = false;
  auto n = python_int(text, saturated);
  if (saturated) return std::nullopt;  // past int64: not a value any field here holds
  return n;
}

std::optional<std::int64_t> python_int(std::string_view text) {
  bool saturated = false;
  return python_int(text, saturated);
}

namespace {

// The value of a digit as int() reads it: 0-9, or a decimal digit of any script (general
// category Nd: "١" is 1); -1 for anything else.
int decimal_digit(char32_t cp) {
  if (cp >= '0' && cp <= '9') return static_cast<int>(cp - '0');
  if (cp < 0x80) return -1;
  const auto c = static_cast<UChar32>(cp);
  return u_charType(c) == U_DECIMAL_DIGIT_NUMBER ? u_charDigitValue(c) : -1;
}

}  // namespace

std::optional<std::int64_t> python_int(std::string_view text, bool& saturated) {
  std::string_view s = unicode::trim(text);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  const auto cps = unicode::decode(s);
  if (!cps) return std::nullopt;
  std::int64_t v = 0;
  saturated = false;
  bool after_digit = false;
  for (std::size_t i = 0; i < cps->size(); ++i) {
    const char32_t c = (*cps)[i];
    if (c == '_') {  // only between two digits
      if (!after_digit || i + 1 == cps->size()) return std::nullopt;
      after_digit = false;
      continue;
    }
    const int d = decimal_digit(c);
    if (d < 0) return std::nullopt;
    after_digit = true;
    if (v > (INT64_MAX - d) / 10) {
      saturated = true;
    } else {
      v = v * 10 + d;
    }
  }
  if (saturated) return negative ? INT64_MIN : INT64_MAX;
  return negative ? -v : v;
}

// Python's repr: the shortest digits that read back as the same number, written out in
// full while the exponent is from -4 to 15, else in scientific notation.
std::string python_float(double d) {
  if (!std::isfinite(d)) return std::isnan(d) ? "nan" : (d < 0 ? "-inf" : "inf");
  char buf[40];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  if (ec != std::errc{}) return std::to_string(d);  // cannot happen: the buffer is ample
  const std::string_view text(buf, static_cast<std::size_t>(end - buf));
  const auto e = text.find('e');
  std::string_view mantissa = text.substr(0, e);
  std::string out;
  if (mantissa.front() == '-') {
    out = "-";
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  const int exp = std::stoi(std::string(text.substr(e + 1)));
  if (exp < -4 || exp >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += exp < 0 ? "e-" : "e+";
    const std::string mag = std::to_string(std::abs(exp));
    if (mag.size() < 2) out += '0';
    return out + mag;
  }
  if (exp < 0) return out + "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
  const auto whole = static_cast<std::size_t>(exp) + 1;
  if (digits.size() <= whole) return out + digits + std::string(whole - digits.size(), '0') + ".0";
  return out + digits.substr(0, whole) + "." + digits.substr(whole);
}

}  // namespace chat
