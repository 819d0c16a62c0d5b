// Rate limits keyed by string ("login:addr:10.0.0.1"): sliding windows that remember each
// event (exact, for rare events such as failed logins) and token buckets that remember one
// time per key (for every request of a user). The in-process implementation serves one
// node; a shared one (Redis) lets several nodes count together.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "common/time.hpp"

namespace chat::redis {
class RedisClient;
}

namespace chat::auth {

// An event reserve() counted (wait_seconds 0), or the seconds until one can be.
struct Reservation {
  std::int64_t wait_seconds = 0;
  std::string id;  // for release()
};

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;

  // Counts one event for `key` when fewer than `limit` are in the last `window_seconds`;
  // else counts nothing and returns the seconds until one can be counted. One step, so
  // that of many callers at once no more than `limit` pass: a check first and a count
  // later (after a password hash, say) let every caller in flight through.
  virtual boost::asio::awaitable<Reservation> reserve(std::string key, int limit,
                                                      std::int64_t window_seconds, Micros now) = 0;
  // Takes back an event reserve() counted for `key` (a login that succeeded).
  virtual boost::asio::awaitable<void> release(std::string key, std::string id) = 0;

  // A bucket of `burst` events for `key` that refills at `burst` per `window_seconds`
  // (GCRA: one time per key, whatever the rate). Takes one event and returns 0, or returns
  // the seconds until one can be taken, taking nothing.
  virtual boost::asio::awaitable<std::int64_t> take(std::string key, int burst,
                                                    std::int64_t window_seconds, Micros now) = 0;
};

// A token bucket as GCRA keeps it: each event's share of the window (µs), and how far past
// now the time at which the bucket is full again may lie before an event is refused
// (burst - 1 shares). Both implementations of take() use it.
struct BucketShape {
  Micros interval = 1;
  Micros tolerance = 0;
};
inline BucketShape bucket_shape(int burst, std::int64_t window_seconds) {
  const int events = std::max(burst, 1);
  const Micros interval = std::max<Micros>(1, window_seconds * 1'000'000 / events);
  return {interval, interval * (events - 1)};
}

// Thread-safe; memory is bounded by `max_keys` windows and as many buckets (the stalest
// keys are dropped first).
std::unique_ptr<RateLimiter> make_memory_rate_limiter(std::size_t max_keys = 200'000);

// Shared by every node through Redis (one sorted set of event times per key, expiring with
// its window). While Redis cannot be reached, this node counts on its own rather than
// refusing every login.
std::unique_ptr<RateLimiter> make_redis_rate_limiter(std::shared_ptr<redis::RedisClient> client,
                                                     std::string prefix);

}  // namespace chat::auth
