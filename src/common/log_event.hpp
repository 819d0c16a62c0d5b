// Structured log lines: an event name and its fields, one line each. As text (the default)
// `socket.open user=3 chat=0 id=...`; with LOG_FORMAT=json the fields of the line's JSON
// object, beside its time and level. Values are escaped either way, so a field cannot
// break its line or forge another. Secrets (tokens, passwords, query strings) are never
// given to it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chat::logs {

// Set once at start, before any line is logged.
void set_json(bool json);
[[nodiscard]] bool json();

// The name of the logger whose lines are structured events (the JSON formatter puts their
// fields in the object instead of a "msg").
inline constexpr const char* kEventLogger = "event";

class Event {
 public:
  explicit Event(std::string_view name);
  Event& field(std::string_view key, std::string_view value);
  Event& field(std::string_view key, const char* value) {
    return field(key, std::string_view(value));
  }
  Event& field(std::string_view key, const std::string& value) {
    return field(key, std::string_view(value));
  }
  Event& field(std::string_view key, std::int64_t value);
  Event& field(std::string_view key, int value) {
    return field(key, static_cast<std::int64_t>(value));
  }
  Event& field(std::string_view key, std::uint64_t value);
  Event& field(std::string_view key, bool value);
  void info() const;
  void warn() const;

 private:
  void raw(std::string_view key, std::string_view literal);
  std::string line_;
};

// `s` as it is when it is printable and has no spaces or quotes, else as a JSON string
// literal: a value pasted into a text line that cannot split the line or forge a field.
std::string text_value(std::string_view s);

}  // namespace chat::logs
