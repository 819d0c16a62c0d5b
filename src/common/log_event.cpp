#include "common/log_event.hpp"

#include <spdlog/spdlog.h>

#include <atomic>

#include "common/json_text.hpp"

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

std::string text_value(std::string_view s) {
  std::string out;
  if (needs_quotes(s)) {
    json_text::append_string(out, s);
  } else {
    out = s;
  }
  return out;
}

Event::Event(std::string_view name) {
  if (json()) {
    line_ = "\"event\":";
    json_text::append_string(line_, name);
  } else {
    line_ = name;
  }
}

void Event::raw(std::string_view key, std::string_view literal) {
  if (json()) {
    line_ += ',';
    json_text::append_string(line_, key);
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
    json_text::append_string(literal, value);
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
