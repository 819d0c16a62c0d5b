#include "auth/credential_rules.hpp"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "common/unicode.hpp"

namespace chat::auth {
namespace {

constexpr std::size_t kUsernameMaxLength = 150;

// ICU's shared NFKC normaliser. ICU builds it once behind its own once-flag, inside a
// library the thread sanitizer does not see into; holding it in a function-local static
// makes the hand-over between I/O threads one the sanitizer (and any reader) can follow.
const icu::Normalizer2& nfkc_normalizer() {
  static const icu::Normalizer2* const instance = [] {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFKCInstance(status);
    // ICU's data is linked into its library: failing here is a broken installation.
    if (U_FAILURE(status)) throw std::runtime_error("ICU has no NFKC data");
    return n;
  }();
  return *instance;
}

// Python's unicodedata.normalize("NFKC", ...), by ICU. Input must be valid UTF-8.
std::string nfkc(std::string_view utf8) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2& nfkc = nfkc_normalizer();
  const auto text = icu::UnicodeString::fromUTF8(
      icu::StringPiece(utf8.data(), static_cast<std::int32_t>(utf8.size())));
  const icu::UnicodeString normal = nfkc.normalize(text, status);
  if (U_FAILURE(status)) throw std::runtime_error("ICU could not normalise a username");
  std::string out;
  normal.toUTF8String(out);
  return out;
}

// Python's str.isalnum() of one character, which `\w` in Django's UnicodeUsernameValidator
// is (with `_`): a letter (general category L) or a character with a numeric value.
bool python_alnum(char32_t cp) {
  const auto c = static_cast<UChar32>(cp);
  return u_isalpha(c) != 0 || u_getIntPropertyValue(c, UCHAR_NUMERIC_TYPE) != U_NT_NONE;
}

// Python's str.isdigit() of one character, which Django's NumericPasswordValidator asks of
// the whole password: a decimal digit of any script, or a digit such as "²".
bool python_digit(char32_t cp) {
  const auto type = u_getIntPropertyValue(static_cast<UChar32>(cp), UCHAR_NUMERIC_TYPE);
  return type == U_NT_DECIMAL || type == U_NT_DIGIT;
}

// A character of a dot-atom in Django's EmailValidator: [-!#$%&'*+/=?^_`{}|~0-9A-Z] under
// re.IGNORECASE, which in Python also matches the four non-ASCII letters that case-fold
// into A-Z (U+0130, U+0131, U+017F, U+212A).
bool is_atext(char32_t cp) {
  if (cp < 0x80) {
    const auto c = static_cast<char>(cp);
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("!#$%&'*+/=?^_`{|}~-").find(c) != std::string_view::npos;
  }
  return cp == 0x130 || cp == 0x131 || cp == 0x17F || cp == 0x212A;
}

// Django's quoted-string: ASCII but for NUL, tab, LF, CR, space, '"' and '\' as they are,
// or any of them but NUL, LF and CR after a backslash.
bool valid_quoted_local_part(const std::vector<char32_t>& cps) {
  const auto plain = [](char32_t c) {
    return c >= 0x01 && c <= 0x7F && c != '\t' && c != '\n' && c != '\r' && c != ' ' && c != '"' &&
           c != '\\';
  };
  const auto escapable = [](char32_t c) {
    return c >= 0x01 && c <= 0x7F && c != '\n' && c != '\r';
  };
  for (std::size_t i = 1; i + 1 < cps.size(); ++i) {
    if (cps[i] == '\\') {
      if (i + 2 >= cps.size() || !escapable(cps[i + 1])) return false;
      ++i;
    } else if (!plain(cps[i])) {
      return false;
    }
  }
  return true;
}

// Django's user_regex: a dot-atom or a quoted-string, of any length (the address as a
// whole is bounded).
bool valid_local_part(std::string_view local) {
  const auto cps = unicode::decode(local);
  if (!cps || cps->empty()) return false;
  if (cps->size() >= 2 && cps->front() == '"' && cps->back() == '"') {
    return valid_quoted_local_part(*cps);
  }
  if (cps->front() == '.' || cps->back() == '.') return false;
  for (std::size_t i = 0; i < cps->size(); ++i) {
    if ((*cps)[i] == '.') {
      if ((*cps)[i + 1] == '.') return false;
    } else if (!is_atext((*cps)[i])) {
      return false;
    }
  }
  return true;
}

// Django's literal_regex, \[([A-F0-9:.]+)\], whose address validate_ipv46_address must
// take: an IPv4 address as Python's ipaddress reads it (four decimal parts of 0-255, no
// leading zeros, as inet_pton reads them), or an IPv6 address of at most 39 characters.
bool valid_address_literal(std::string_view literal) {
  if (literal.empty() || !std::all_of(literal.begin(), literal.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == '.' || c == ':';
      })) {
    return false;
  }
  const std::string text(literal);
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 ||
         (text.size() <= 39 && inet_pton(AF_INET6, text.c_str(), buf) == 1);
}

// Labels of letters, digits and inner hyphens (Unicode letters allowed, as IDNA domains),
// at least two labels, and a top-level label that is not all digits.
bool valid_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  if (domain.front() == '[' && domain.back() == ']') {
    return valid_address_literal(domain.substr(1, domain.size() - 2));
  }
  std::vector<std::string_view> labels;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = domain.find('.', start);
    labels.push_back(domain.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (labels.size() < 2) return false;
  for (auto label : labels) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    auto cps = unicode::decode(label);
    if (!cps) return false;
    for (char32_t cp : *cps) {
      if (cp != '-' && !unicode::is_alnum(cp)) return false;
    }
  }
  const auto tld = labels.back();
  return tld.size() >= 2 && !std::all_of(tld.begin(), tld.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c));
         });
}

}  // namespace

std::string username_key(std::string_view username) {
  return unicode::caseless_key(username);
}

std::vector<std::string> username_problems(std::string_view username) {
  std::vector<std::string> problems;
  auto cps = unicode::decode(username);
  bool valid = cps.has_value() && !cps->empty();
  if (valid) {
    valid = std::all_of(cps->begin(), cps->end(), [](char32_t cp) {
      return python_alnum(cp) || cp == '_' || cp == '@' || cp == '.' || cp == '+' || cp == '-';
    });
  }
  if (!valid) {
    problems.emplace_back(
        "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ "
        "characters.");
  }
  return problems;
}

NewUsername new_username(std::string_view username) {
  // The validator's message, else max_length's, for one spelling of the name.
  const auto problems_of = [](std::string_view name) {
    auto problems = username_problems(name);
    if (problems.empty() && unicode::length(name) > kUsernameMaxLength) {
      problems.emplace_back("Ensure this field has no more than 150 characters.");
    }
    return problems;
  };
  NewUsername out;
  out.problems = problems_of(username);
  if (!out.problems.empty()) return out;
  out.name = nfkc(username);
  if (out.name != username) out.problems = problems_of(out.name);
  return out;
}

std::vector<std::string> email_problems(std::string_view email) {
  const auto at = email.rfind('@');
  // Django's EmailValidator lets its domain_allowlist (["localhost"], as written) through
  // without the domain check.
  const auto domain = at == std::string_view::npos ? std::string_view() : email.substr(at + 1);
  const bool valid = email.size() <= 254 && at != std::string_view::npos &&
                     valid_local_part(email.substr(0, at)) &&
                     (domain == "localhost" || valid_domain(domain));
  if (valid) return {};
  return {"Enter a valid email address."};
}

std::vector<std::string> password_problems(std::string_view password, std::string_view username) {
  return password_problems(password, {username});
}

std::vector<std::string> password_problems(std::string_view password,
                                           std::initializer_list<std::string_view> usernames) {
  // In the order of Django's default AUTH_PASSWORD_VALIDATORS, whose messages these are:
  // similarity, length, then numeric.
  std::vector<std::string> problems;
  const std::string lowered = unicode::to_lower(password);
  if (std::any_of(usernames.begin(), usernames.end(), [&](std::string_view username) {
        return !username.empty() && lowered == unicode::to_lower(username);
      })) {
    problems.emplace_back("The password is too similar to the username.");
  }
  if (unicode::length(password) < 8) {
    problems.emplace_back("This password is too short. It must contain at least 8 characters.");
  }
  const auto cps = unicode::decode(password);
  if (cps && !cps->empty() && std::all_of(cps->begin(), cps->end(), python_digit)) {
    problems.emplace_back("This password is entirely numeric.");
  }
  return problems;
}

std::string normalize_email(std::string_view email) {
  const auto at = email.rfind('@');
  if (at == std::string_view::npos) return std::string(email);
  return std::string(email.substr(0, at + 1)) + unicode::to_lower(email.substr(at + 1));
}

}  // namespace chat::auth
