// PostgreSQL array literals ({a,b,...}), each sent as one text parameter and cast by its
// statement (`$1::bigint[]`): a batch of rows in one statement instead of one per row.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace chat::store::postgres {

// Elements of an array literal: numbers as they are, text quoted with its quotes and
// backslashes escaped, nullopt as NULL.
inline void append_element(std::string& out, std::int64_t value) {
  out += std::to_string(value);
}

inline void append_element(std::string& out, const std::string& value) {
  out += '"';
  for (const char ch : value) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
}

template <class T>
void append_element(std::string& out, const std::optional<T>& value) {
  if (value) {
    append_element(out, *value);
  } else {
    out += "NULL";
  }
}

template <class T>
std::string array_literal(const std::vector<T>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    append_element(out, values[i]);
  }
  return out + "}";
}

}  // namespace chat::store::postgres
