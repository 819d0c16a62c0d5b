// DRF's UserRateThrottle for the REST door (USER_THROTTLE_RATE): a user's authenticated
// requests, whatever they ask, up to a rate. Socket events have limits of their own, per
// socket, in the WebSocket session.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>

#include "common/result.hpp"

namespace chat::auth {

class RateLimiter;

class RequestThrottle {
 public:
  // `count` requests per `window_seconds`, in bursts of up to `count`; 0: no limit.
  RequestThrottle(RateLimiter& limiter, int count, std::int64_t window_seconds)
      : limiter_(limiter), count_(count), window_(window_seconds) {}

  // Takes one request of `user_id`, or refuses it (throttled, with the seconds to wait)
  // without counting it.
  boost::asio::awaitable<Result<Ok>> admit(std::int64_t user_id);

 private:
  RateLimiter& limiter_;
  int count_;
  std::int64_t window_;
};

}  // namespace chat::auth
