// Reading the few fields chatbench needs out of a server event without a JSON parser:
// the server writes compact JSON with these keys once each, so a search is exact.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace chatbench {

// The integer after "key": in `json`, if any.
inline std::optional<std::int64_t> int_field(std::string_view json, std::string_view key) {
  const auto at = json.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  const char* p = json.data() + at + key.size();
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(p, json.data() + json.size(), v);
  if (ec != std::errc()) return std::nullopt;
  return v;
}

inline bool is_message_event(std::string_view json) {
  return json.find(R"("type":"message")") != std::string_view::npos;
}

// chatbench's message texts start with "<index>|".
inline std::optional<std::int64_t> text_index(std::string_view json) {
  return int_field(json, R"("text":")");
}

}  // namespace chatbench
