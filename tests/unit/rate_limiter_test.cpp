#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdlib>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "auth/rate_limiter.hpp"
#include "redis/redis_client.hpp"

using namespace chat;

namespace {

template <class T>
T run(boost::asio::awaitable<T> a) {
  boost::asio::io_context io;
  auto f = boost::asio::co_spawn(io, std::move(a), boost::asio::use_future);
  io.run();
  return f.get();
}

constexpr Micros kSecond = 1'000'000;

}  // namespace

TEST(MemoryRateLimiter, MemoryStaysBounded) {
  auto limiter = auth::make_memory_rate_limiter(100);
  const Micros t0 = 1'000 * kSecond;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(run(limiter->reserve("key" + std::to_string(i), 2, 60, t0 + i)).wait_seconds, 0);
  }
  // The newest keys survive the sweeps; the limiter keeps working.
  EXPECT_EQ(run(limiter->reserve("key999", 2, 60, t0 + 2000)).wait_seconds, 0);
  EXPECT_GT(run(limiter->reserve("key999", 2, 60, t0 + 2001)).wait_seconds, 0);
}

// The token buckets, against both implementations: in process, and in the Redis the test
// services run (CHATD_TEST_REDIS_PORT; skipped without it).
class TokenBucket : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
    if (std::string(GetParam()) == "memory") {
      limiter_ = auth::make_memory_rate_limiter();
      return;
    }
    const char* port = std::getenv("CHATD_TEST_REDIS_PORT");
    if (port == nullptr) GTEST_SKIP() << "CHATD_TEST_REDIS_PORT is not set";
    client_ = redis::RedisClient::create(io_.get_executor(), "127.0.0.1", std::atoi(port));
    client_->start();
    for (int i = 0; i < 500 && !client_->connected(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Not connected, the limiter would count in process: that is not what is under test.
    ASSERT_TRUE(client_->connected()) << "no Redis on port " << port;
    std::random_device rd;
    prefix_ = "limiter-test-" + std::to_string(rd()) + ":";
    limiter_ = auth::make_redis_rate_limiter(client_, prefix_);
  }

  void TearDown() override {
    limiter_.reset();
    if (client_) client_->stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }

  std::int64_t take(const std::string& key, int burst, std::int64_t window, Micros now) {
    auto f = boost::asio::co_spawn(io_, limiter_->take(key, burst, window, now),
                                   boost::asio::use_future);
    if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      ADD_FAILURE() << "take() did not complete";
      return -1;
    }
    return f.get();
  }

  auth::Reservation reserve(const std::string& key, int limit, std::int64_t window, Micros now) {
    auto f = boost::asio::co_spawn(io_, limiter_->reserve(key, limit, window, now),
                                   boost::asio::use_future);
    if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      ADD_FAILURE() << "reserve() did not complete";
      return {-1, {}};
    }
    return f.get();
  }

  void release(const std::string& key, const std::string& id) {
    auto f = boost::asio::co_spawn(io_, limiter_->release(key, id), boost::asio::use_future);
    if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      ADD_FAILURE() << "release() did not complete";
    }
  }

  // Whether Redis holds `key`'s bucket ("rb:") or window ("rl:"), true for the in-process
  // limiter: a Redis limiter that quietly counted in process would pass every other check.
  bool stored(const std::string& key, const char* kind = "rb:") {
    if (!client_) return true;
    auto f = boost::asio::co_spawn(io_, client_->command({"EXISTS", prefix_ + kind + key}),
                                   boost::asio::use_future);
    return f.wait_for(std::chrono::seconds(10)) == std::future_status::ready &&
           f.get().integer == 1;
  }

  boost::asio::io_context io_;
  std::string prefix_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::thread thread_;
  std::shared_ptr<redis::RedisClient> client_;
  std::unique_ptr<auth::RateLimiter> limiter_;
};

TEST_P(TokenBucket, AFullBucketThenOneEventPerInterval) {
  const Micros t0 = 1'000 * kSecond;
  // 5 a minute: five at once, then one every 12 s.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(take("u", 5, 60, t0), 0) << i;
  EXPECT_EQ(take("u", 5, 60, t0), 12);
  EXPECT_EQ(take("u", 5, 60, t0 + 11 * kSecond + 1), 1);
  EXPECT_EQ(take("u", 5, 60, t0 + 12 * kSecond), 0);
  EXPECT_EQ(take("u", 5, 60, t0 + 12 * kSecond), 12);
  EXPECT_TRUE(stored("u"));
  // Another key has its own bucket.
  EXPECT_EQ(take("v", 5, 60, t0 + 12 * kSecond), 0);
  // Left alone for a minute, the bucket is full again.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(take("u", 5, 60, t0 + 72 * kSecond), 0) << i;
  EXPECT_EQ(take("u", 5, 60, t0 + 72 * kSecond), 12);
}

TEST_P(TokenBucket, RefusedEventsTakeNothing) {
  const Micros t0 = 2'000 * kSecond;
  // A minute, not a second: Redis expires the key in real time, and the test's times are
  // made up.
  EXPECT_EQ(take("r", 1, 60, t0), 0);
  // However often a refused client asks, the next event is due a minute after the first.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(take("r", 1, 60, t0 + i * kSecond), 60 - i) << i;
  EXPECT_EQ(take("r", 1, 60, t0 + 60 * kSecond), 0);
}

INSTANTIATE_TEST_SUITE_P(Limiters, TokenBucket, ::testing::Values("memory", "redis"),
                         [](const auto& info) { return std::string(info.param); });

// The sliding windows (failed logins, registrations), against both implementations.
using SlidingWindow = TokenBucket;

TEST_P(SlidingWindow, BlocksAtTheLimitUntilTheWindowMoves) {
  const Micros t0 = 1'000 * kSecond;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(reserve("k", 3, 60, t0 + i * kSecond).wait_seconds, 0);
  EXPECT_TRUE(stored("k", "rl:"));
  // Three events at t0, t0+1, t0+2: refused, counting nothing, until the first leaves the
  // 60 s window.
  EXPECT_EQ(reserve("k", 3, 60, t0 + 2 * kSecond).wait_seconds, 58);
  EXPECT_EQ(reserve("k", 3, 60, t0 + 59 * kSecond).wait_seconds, 1);
  EXPECT_EQ(reserve("k", 3, 60, t0 + 60 * kSecond).wait_seconds, 0);
  // Now t0+1, t0+2 and t0+60: the next is due when t0+1 leaves.
  EXPECT_EQ(reserve("k", 3, 60, t0 + 60 * kSecond).wait_seconds, 1);
  // Other keys are independent.
  EXPECT_EQ(reserve("other", 1, 60, t0).wait_seconds, 0);
}

TEST_P(SlidingWindow, AReleasedEventNoLongerCounts) {
  const Micros t0 = 3'000 * kSecond;
  const auto first = reserve("r", 2, 60, t0);
  const auto second = reserve("r", 2, 60, t0);  // the same time: released one at a time
  ASSERT_EQ(first.wait_seconds, 0);
  ASSERT_EQ(second.wait_seconds, 0);
  EXPECT_GT(reserve("r", 2, 60, t0 + kSecond).wait_seconds, 0);
  release("r", second.id);
  const auto third = reserve("r", 2, 60, t0 + kSecond);
  EXPECT_EQ(third.wait_seconds, 0);
  EXPECT_GT(reserve("r", 2, 60, t0 + kSecond).wait_seconds, 0);
  release("r", first.id);
  release("r", third.id);
  EXPECT_EQ(reserve("r", 2, 60, t0 + 2 * kSecond).wait_seconds, 0);
  EXPECT_EQ(reserve("r", 2, 60, t0 + 2 * kSecond).wait_seconds, 0);
  EXPECT_GT(reserve("r", 2, 60, t0 + 2 * kSecond).wait_seconds, 0);
}

// Many callers at once: no more than the limit get through (a check and a later count let
// every one in flight through).
TEST_P(SlidingWindow, ConcurrentCallersPassNoMoreThanTheLimit) {
  const Micros t0 = 4'000 * kSecond;
  std::vector<std::future<auth::Reservation>> calls;
  calls.reserve(50);
  for (int i = 0; i < 50; ++i) {
    calls.push_back(boost::asio::co_spawn(io_, limiter_->reserve("c", 10, 60, t0 + i),
                                          boost::asio::use_future));
  }
  int passed = 0;
  for (auto& call : calls) {
    ASSERT_EQ(call.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    if (call.get().wait_seconds == 0) ++passed;
  }
  EXPECT_EQ(passed, 10);
}

INSTANTIATE_TEST_SUITE_P(Limiters, SlidingWindow, ::testing::Values("memory", "redis"),
                         [](const auto& info) { return std::string(info.param); });

TEST(MemoryRateLimiter, BucketsStayBounded) {
  auto limiter = auth::make_memory_rate_limiter(100);
  const Micros t0 = 1'000 * kSecond;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(run(limiter->take("key" + std::to_string(i), 1, 60, t0 + i)), 0);
  }
  // The newest keys survive the sweeps: the last one is still empty; the first was dropped
  // (a dropped key is a full bucket).
  EXPECT_EQ(run(limiter->take("key999", 1, 60, t0 + 1000)), 60);
  EXPECT_EQ(run(limiter->take("key0", 1, 60, t0 + 1001)), 0);
}
