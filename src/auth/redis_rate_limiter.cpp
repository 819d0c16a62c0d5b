#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <random>
#include <string_view>

#include "auth/rate_limiter.hpp"
#include "redis/redis_client.hpp"

namespace chat::auth {
namespace {

// KEYS: the counter. ARGV: limit, window (µs), now (µs), a unique member.
// Drops events older than the window; counts the member and returns 0 when fewer than
// `limit` remain, else returns the µs (at least 1) until that is so.
constexpr const char* kReserve = R"lua(
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return 0
)lua";

// KEYS: the bucket. ARGV: interval (µs), tolerance (µs), now (µs).
// GCRA, as the in-process limiter: the key holds the time the bucket is full again. Returns
// 0 when an event was taken, else the µs until one can be.
constexpr const char* kTake = R"lua(
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local full_at = tonumber(redis.call('GET', KEYS[1]) or now)
if full_at < now then full_at = now end
if full_at - tolerance > now then return full_at - tolerance - now end
full_at = full_at + interval
redis.call('SET', KEYS[1], string.format('%d', full_at), 'PX', math.ceil((full_at - now) / 1000))
return 0
)lua";

class RedisRateLimiter final : public RateLimiter {
 public:
  RedisRateLimiter(std::shared_ptr<redis::RedisClient> client, std::string prefix)
      : client_(std::move(client)),
        prefix_(std::move(prefix)),
        fallback_(make_memory_rate_limiter()) {
    std::random_device rd;
    node_ = std::to_string(rd()) + std::to_string(rd());
  }

  // A reservation counted in Redis has the member's name for id; one counted on this node
  // (Redis away) has "local:" and the in-process limiter's id, and is released there.
  boost::asio::awaitable<Reservation> reserve(std::string key, int limit,
                                              std::int64_t window_seconds, Micros now) override {
    std::string member = node_ + ":" + std::to_string(++counter_);
    std::vector<std::string> command{"EVAL",
                                     kReserve,
                                     "1",
                                     prefix_ + "rl:" + key,
                                     std::to_string(limit),
                                     std::to_string(window_seconds * 1'000'000),
                                     std::to_string(now),
                                     member};
    const auto micros = co_await run(std::move(command), now);
    if (!micros) {
      auto local = co_await fallback_->reserve(std::move(key), limit, window_seconds, now);
      if (local.wait_seconds == 0) local.id = std::string(kLocal) + local.id;
      co_return local;
    }
    if (*micros > 0) co_return Reservation{(*micros + 999'999) / 1'000'000, {}};
    co_return Reservation{0, std::move(member)};
  }

  boost::asio::awaitable<void> release(std::string key, std::string id) override {
    if (id.starts_with(kLocal)) {
      co_await fallback_->release(std::move(key), id.substr(kLocal.size()));
      co_return;
    }
    std::vector<std::string> command{"ZREM", prefix_ + "rl:" + key, std::move(id)};
    co_await run(std::move(command), now_micros());
  }

  boost::asio::awaitable<std::int64_t> take(std::string key, int burst, std::int64_t window_seconds,
                                            Micros now) override {
    const auto shape = bucket_shape(burst, window_seconds);
    std::vector<std::string> command{"EVAL",
                                     kTake,
                                     "1",
                                     prefix_ + "rb:" + key,
                                     std::to_string(shape.interval),
                                     std::to_string(shape.tolerance),
                                     std::to_string(now)};
    const auto micros = co_await run(std::move(command), now);
    if (!micros) co_return co_await fallback_->take(std::move(key), burst, window_seconds, now);
    co_return (*micros + 999'999) / 1'000'000;
  }

 private:
  // The script's integer reply, or nullopt (and a warning) when Redis cannot answer: the
  // caller then counts on this node.
  boost::asio::awaitable<std::optional<std::int64_t>> run(std::vector<std::string> command,
                                                          Micros now) {
    std::optional<std::int64_t> out;
    try {
      auto reply = co_await client_->command(std::move(command));
      out = reply.integer;
    } catch (const std::exception& e) {
      warn_unavailable(e, now);
    }
    co_return out;
  }

  // Once every 10 s at most: a limiter asked on every request must not flood the log.
  void warn_unavailable(const std::exception& e, Micros now) {
    auto last = last_warning_.load(std::memory_order_relaxed);
    if (now - last < 10'000'000 ||
        !last_warning_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      return;
    }
    spdlog::warn("rate limiter: Redis unavailable ({}); counting on this node", e.what());
  }

  static constexpr std::string_view kLocal = "local:";

  std::shared_ptr<redis::RedisClient> client_;
  std::string prefix_;
  std::unique_ptr<RateLimiter> fallback_;
  std::string node_;  // events of different nodes are different members
  std::atomic<std::uint64_t> counter_ = 0;
  std::atomic<Micros> last_warning_ = -10'000'000;
};

}  // namespace

std::unique_ptr<RateLimiter> make_redis_rate_limiter(std::shared_ptr<redis::RedisClient> client,
                                                     std::string prefix) {
  return std::make_unique<RedisRateLimiter>(std::move(client), std::move(prefix));
}

}  // namespace chat::auth
