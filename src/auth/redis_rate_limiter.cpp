#include <spdlog/spdlog.h>

#include <atomic>
#include <optional>
#include <random>

#include "auth/rate_limiter.hpp"
#include "redis/redis_client.hpp"

namespace chat::auth {
namespace {

// KEYS: the counter. ARGV: limit, window (µs), now (µs).
// Drops events older than the window; returns the µs until fewer than `limit` remain.
constexpr const char* kWait = R"lua(
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then return 0 end
local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return math.max(0, tonumber(oldest[2]) + window - now)
)lua";

// KEYS: the counter. ARGV: window (µs), now (µs), a unique member.
constexpr const char* kAdd = R"lua(
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) / 1000))
return 1
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

  boost::asio::awaitable<std::int64_t> wait_seconds(std::string key, int limit,
                                                    std::int64_t window_seconds,
                                                    Micros now) override {
    std::vector<std::string> command{"EVAL",
                                     kWait,
                                     "1",
                                     prefix_ + "rl:" + key,
                                     std::to_string(limit),
                                     std::to_string(window_seconds * 1'000'000),
                                     std::to_string(now)};
    std::optional<std::int64_t> micros;
    try {
      auto reply = co_await client_->command(std::move(command));
      micros = reply.integer;
    } catch (const std::exception& e) {
      spdlog::warn("rate limiter: Redis unavailable ({}); counting on this node", e.what());
    }
    if (!micros)
      co_return co_await fallback_->wait_seconds(std::move(key), limit, window_seconds, now);
    co_return (*micros + 999'999) / 1'000'000;
  }

  boost::asio::awaitable<void> add(std::string key, std::int64_t window_seconds,
                                   Micros now) override {
    std::vector<std::string> command{"EVAL",
                                     kAdd,
                                     "1",
                                     prefix_ + "rl:" + key,
                                     std::to_string(window_seconds * 1'000'000),
                                     std::to_string(now),
                                     node_ + ":" + std::to_string(++counter_)};
    bool stored = false;
    try {
      co_await client_->command(std::move(command));
      stored = true;
    } catch (const std::exception& e) {
      spdlog::warn("rate limiter: Redis unavailable ({}); counting on this node", e.what());
    }
    if (!stored) co_await fallback_->add(std::move(key), window_seconds, now);
  }

 private:
  std::shared_ptr<redis::RedisClient> client_;
  std::string prefix_;
  std::unique_ptr<RateLimiter> fallback_;
  std::string node_;  // events of different nodes are different members
  std::atomic<std::uint64_t> counter_ = 0;
};

}  // namespace

std::unique_ptr<RateLimiter> make_redis_rate_limiter(std::shared_ptr<redis::RedisClient> client,
                                                     std::string prefix) {
  return std::make_unique<RedisRateLimiter>(std::move(client), std::move(prefix));
}

}  // namespace chat::auth
