#include "common/log_event.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>

#include "common/unicode.hpp"

namespace chat::logs {
namespace {

std::atomic<bool> json_lines{false};

std::shared_ptr<spdlog::logger> event_logger() {
  // Registered by the logging set-up; before it (tests, commands), the default logger.
  auto logger = spdlog::get(kEventLogger);
  return logger ? logger : spdlog::default_logger();
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  }
  return false;
}

}  // namespace

void set_json(bool json) {
  json_lines.store(json);
}

bool json() {
  return json_lines.load(std::memory_order_relaxed);
}

void append_json_string(std::string& out, std::string_view s) {
  const bool utf8 = unicode::is_valid_utf8(s);
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
}

std::string text_value(std::string_view s) {
  std::string out;
  if (needs_quotes(s)) {
    append_json_string(out, s);
  } else {
    out = s;
  }
  return out;
}

Event::Event(std::string_view name) {
  if (json()) {
    line_ = "\"event\":";
    append_json_string(line_, name);
  } else {
    line_ = name;
  }
}

void Event::raw(std::string_view key, std::string_view literal) {
  if (json()) {
    line_ += ',';
    append_json_string(line_, key);
    line_ += ':';
  } else {
    line_ += ' ';
    line_ += key;
    line_ += '=';
  }
  line_ += literal;
}

Event& Event::field(std::string_view key, std::string_view value) {
  if (json()) {
    std::string literal;
    append_json_string(literal, value);
    raw(key, literal);
  } else {
    // The text form quotes as JSON does, so a value with spaces or quotes stays one field.
    raw(key, text_value(value));
  }
  return *this;
}

Event& Event::field(std::string_view key, std::int64_t value) {
  raw(key, std::to_string(value));
  return *this;
}

Event& Event::field(std::string_view key, std::uint64_t value) {
  raw(key, std::to_string(value));
  return *this;
}

Event& Event::field(std::string_view key, bool value) {
  raw(key, value ? "true" : "false");
  return *this;
}

void Event::info() const {
  event_logger()->info(line_);
}

void Event::warn() const {
  event_logger()->warn(line_);
}

}  // namespace chat::logs
