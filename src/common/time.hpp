// Wall-clock time as the API shows it: microseconds since the Unix epoch, printed as
// ISO-8601 UTC with a trailing Z (2024-01-01T12:00:00.123456Z), like DRF.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace chat {

using Micros = std::int64_t;  // microseconds since 1970-01-01T00:00:00Z

Micros now_micros();
std::int64_t now_seconds();
std::string format_iso8601(Micros t);
// The same text appended to `out` (pages of messages write theirs in place: a string of
// 27 characters is past the small-string buffer, a heap block each).
void append_iso8601(std::string& out, Micros t);

}  // namespace chat
