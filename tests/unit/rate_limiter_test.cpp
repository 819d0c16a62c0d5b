#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "auth/rate_limiter.hpp"

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

TEST(MemoryRateLimiter, BlocksAtTheLimitUntilTheWindowMoves) {
  auto limiter = auth::make_memory_rate_limiter();
  const Micros t0 = 1'000 * kSecond;
  EXPECT_EQ(run(limiter->wait_seconds("k", 3, 60, t0)), 0);
  for (int i = 0; i < 3; ++i) run(limiter->add("k", 60, t0 + i * kSecond));
  // Three events at t0, t0+1, t0+2: blocked until the first leaves the 60 s window.
  EXPECT_EQ(run(limiter->wait_seconds("k", 3, 60, t0 + 2 * kSecond)), 58);
  EXPECT_EQ(run(limiter->wait_seconds("k", 3, 60, t0 + 59 * kSecond)), 1);
  EXPECT_EQ(run(limiter->wait_seconds("k", 3, 60, t0 + 60 * kSecond)), 0);
  // Other keys are independent.
  EXPECT_EQ(run(limiter->wait_seconds("other", 1, 60, t0)), 0);
}

TEST(MemoryRateLimiter, MemoryStaysBounded) {
  auto limiter = auth::make_memory_rate_limiter(100);
  const Micros t0 = 1'000 * kSecond;
  for (int i = 0; i < 1000; ++i) run(limiter->add("key" + std::to_string(i), 60, t0 + i));
  // The newest keys survive the sweeps; the limiter keeps working.
  run(limiter->add("key999", 60, t0 + 2000));
  EXPECT_GT(run(limiter->wait_seconds("key999", 2, 60, t0 + 2001)), 0);
}
