// JSON text appended straight to a string. Most answers build a boost::json tree and
// serialise it; a page of history is 50 to 200 message objects, and building the tree
// first cost more than reading the page from the database, so such pages are written
// as text (chat/wire.hpp keeps one definition of each shape for both ways).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chat::json_text {

// `s` as a JSON string literal, quotes included. Quotes, backslashes, control characters
// and DEL are escaped; when `s` is not valid UTF-8 its bytes above 0x7f are escaped one by
// one (\u00XX), so the result is always valid JSON.
void append_string(std::string& out, std::string_view s);

void append_int(std::string& out, std::int64_t v);

// One object's members, comma-separated, between the braces it writes on construction
// and on close(). Keys are written as given: they are the API's own names, never input.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_ += '{'; }

  void number(std::string_view key, std::int64_t v);
  void string(std::string_view key, std::string_view v);
  void boolean(std::string_view key, bool v);
  void null(std::string_view key);
  // A time as the API prints it (common/time.hpp), written in place.
  void timestamp(std::string_view key, std::int64_t micros);
  // Writes `key`; the caller then appends its value, as JSON text, to the string returned.
  std::string& value_of(std::string_view key);
  void close() { out_ += '}'; }

 private:
  void key(std::string_view k);

  std::string& out_;
  bool first_ = true;
};

}  // namespace chat::json_text
