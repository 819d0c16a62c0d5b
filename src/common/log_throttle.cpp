#include "common/log_throttle.hpp"

namespace chat {

std::optional<std::uint64_t> LogThrottle::admit(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (last_ && now - *last_ < period_) {
    ++skipped_;
    return std::nullopt;
  }
  last_ = now;
  const std::uint64_t skipped = skipped_;
  skipped_ = 0;
  return skipped;
}

}  // namespace chat
