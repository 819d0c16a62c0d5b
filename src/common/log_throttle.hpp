// At most one log line per period for a failure that repeats with every request (the
// database being away fails each one): the lines in between are counted, and the next
// line written says how many there were.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace chat {

class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration period) : period_(period) {}

  // Thread-safe. Whether to write this line: nullopt to leave it out, else how many were
  // left out since the last one written.
  std::optional<std::uint64_t> admit(
      std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

 private:
  std::chrono::steady_clock::duration period_;
  std::mutex mutex_;
  std::optional<std::chrono::steady_clock::time_point> last_;
  std::uint64_t skipped_ = 0;
};

}  // namespace chat
