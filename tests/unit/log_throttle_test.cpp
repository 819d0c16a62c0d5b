#include <gtest/gtest.h>

#include "common/log_throttle.hpp"

using chat::LogThrottle;
using namespace std::chrono_literals;

TEST(LogThrottle, WritesOneLinePerPeriodAndCountsTheOthers) {
  LogThrottle throttle(10s);
  const auto t0 = std::chrono::steady_clock::time_point() + 1h;
  EXPECT_EQ(throttle.admit(t0), 0U);  // the first of an outage
  EXPECT_EQ(throttle.admit(t0 + 1s), std::nullopt);
  EXPECT_EQ(throttle.admit(t0 + 9s), std::nullopt);
  EXPECT_EQ(throttle.admit(t0 + 10s), 2U);  // with the two left out
  EXPECT_EQ(throttle.admit(t0 + 15s), std::nullopt);
  EXPECT_EQ(throttle.admit(t0 + 60s), 1U);
  EXPECT_EQ(throttle.admit(t0 + 120s), 0U);
}
