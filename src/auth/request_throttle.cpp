#include "auth/request_throttle.hpp"

#include <string>

#include "auth/rate_limiter.hpp"
#include "metrics/metrics.hpp"

namespace chat::auth {

boost::asio::awaitable<Result<Ok>> RequestThrottle::admit(std::int64_t user_id) {
  if (count_ <= 0) co_return Ok{};
  // A token bucket rather than DRF's list of request times: one time per user, whatever the
  // rate, in memory or in Redis.
  const auto wait =
      co_await limiter_.take("user:" + std::to_string(user_id), count_, window_, now_micros());
  if (wait > 0) {
    metrics::metrics().throttled.with({"user"}).inc();
    co_return Error::throttled(static_cast<int>(wait));
  }
  co_return Ok{};
}

}  // namespace chat::auth
