#include "common/python_number.hpp"

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

std::optional<std::int64_t> python_int(std::string_view text, bool& saturated) {
  std::string_view s = unicode::trim(text);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  std::int64_t v = 0;
  saturated = false;
  bool after_digit = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {  // only between two digits
      if (!after_digit || i + 1 == s.size()) return std::nullopt;
      after_digit = false;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    after_digit = true;
    const int d = c - '0';
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
