#include "common/json_text.hpp"

#include <charconv>
#include <cstring>

#include "common/time.hpp"
#include "common/unicode.hpp"

namespace chat::json_text {
namespace {

bool needs_escape(unsigned char c, bool utf8) {
  return c < 0x20 || c == '"' || c == '\\' || c == 0x7f || (c >= 0x80 && !utf8);
}

void append_escaped(std::string& out, unsigned char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";
      const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(u, sizeof u);
    }
  }
}

// Whether all 8 bytes of `w` are printable ASCII other than a quote or a backslash: the
// bytes that are copied as they are whatever the rest of the string holds. Word-at-a-time
// tests for a byte below 0x20, equal to one of three, or with its high bit set.
bool plain_word(std::uint64_t w) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  auto has_zero = [](std::uint64_t v) { return ((v - kOnes) & ~v & kHighs) != 0; };
  if ((w & kHighs) != 0) return false;
  if (((w - kOnes * 0x20) & ~w & kHighs) != 0) return false;  // exact once no high bit is set
  return !has_zero(w ^ (kOnes * '"')) && !has_zero(w ^ (kOnes * '\\')) &&
         !has_zero(w ^ (kOnes * 0x7f));
}

bool plain_byte(unsigned char c) {
  return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

// How many bytes at the start of `s` are plain.
std::size_t plain_prefix(std::string_view s) {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + i, sizeof w);
    if (!plain_word(w)) break;
  }
  while (i < s.size() && plain_byte(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

}  // namespace

void append_string(std::string& out, std::string_view s) {
  out += '"';
  // Most text is plain ASCII: copied at once, and nothing to check for UTF-8.
  const std::size_t plain = plain_prefix(s);
  out.append(s.data(), plain);
  const std::string_view rest = s.substr(plain);
  if (!rest.empty()) {
    const bool utf8 = unicode::is_valid_utf8(rest);
    std::size_t run = 0;
    for (std::size_t i = 0; i < rest.size(); ++i) {
      const auto c = static_cast<unsigned char>(rest[i]);
      if (!needs_escape(c, utf8)) continue;
      out.append(rest.data() + run, i - run);
      append_escaped(out, c);
      run = i + 1;
    }
    out.append(rest.data() + run, rest.size() - run);
  }
  out += '"';
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// One append of `,"key":` (a page of messages writes about 650 keys).
void ObjectWriter::key(std::string_view k) {
  char buf[64];
  if (k.size() > sizeof buf - 4) {  // no key of the API's is this long
    if (!first_) out_ += ',';
    out_ += '"';
    out_ += k;
    out_ += "\":";
  } else {
    std::size_t n = 0;
    if (!first_) buf[n++] = ',';
    buf[n++] = '"';
    std::memcpy(buf + n, k.data(), k.size());
    n += k.size();
    buf[n++] = '"';
    buf[n++] = ':';
    out_.append(buf, n);
  }
  first_ = false;
}

void ObjectWriter::number(std::string_view k, std::int64_t v) {
  key(k);
  append_int(out_, v);
}

void ObjectWriter::string(std::string_view k, std::string_view v) {
  key(k);
  append_string(out_, v);
}

void ObjectWriter::boolean(std::string_view k, bool v) {
  key(k);
  out_ += v ? "true" : "false";
}

void ObjectWriter::null(std::string_view k) {
  key(k);
  out_ += "null";
}

void ObjectWriter::timestamp(std::string_view k, std::int64_t micros) {
  key(k);
  out_ += '"';
  append_iso8601(out_, micros);
  out_ += '"';
}

std::string& ObjectWriter::value_of(std::string_view k) {
  key(k);
  return out_;
}

}  // namespace chat::json_text
