#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <random>

#include "common/time.hpp"

namespace {

// The reference: gmtime and printf, as the formatter did before it wrote digits itself.
std::string reference(chat::Micros t) {
  std::time_t seconds = static_cast<std::time_t>(t / 1'000'000);
  long micros = static_cast<long>(t % 1'000'000);
  if (micros < 0) {
    micros += 1'000'000;
    --seconds;
  }
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
  return buf;
}

}  // namespace

TEST(Iso8601, KnownInstants) {
  EXPECT_EQ(chat::format_iso8601(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(chat::format_iso8601(1'704'110'400'123'456), "2024-01-01T12:00:00.123456Z");
  EXPECT_EQ(chat::format_iso8601(951'782'400'000'000), "2000-02-29T00:00:00.000000Z");
  EXPECT_EQ(chat::format_iso8601(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(Iso8601, AgreesWithGmtimeEverywhere) {
  std::mt19937_64 random(7);
  // Years 0001 to 9999, and a few far outside them (the general path).
  std::uniform_int_distribution<chat::Micros> any(-62'135'596'800'000'000, 253'402'300'799'999'999);
  for (int i = 0; i < 200'000; ++i) {
    const chat::Micros t = any(random);
    ASSERT_EQ(chat::format_iso8601(t), reference(t)) << t;
  }
  for (chat::Micros t :
       {chat::Micros{-62'135'596'800'000'001}, chat::Micros{253'402'300'800'000'000},
        chat::Micros{-1'000'000}, chat::Micros{86'399'999'999}}) {
    EXPECT_EQ(chat::format_iso8601(t), reference(t)) << t;
  }
}
