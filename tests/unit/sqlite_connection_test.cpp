#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <random>

#include "store/sqlite/connection.hpp"

using namespace chat::store::sqlite;

namespace {

constexpr const char* kCountToMany =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100000000) "
    "SELECT count(*) FROM n";
constexpr const char* kOne = "SELECT 1";

class SqliteConnection : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("chatd-conn-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

// A read past its deadline is stopped, and the connection goes on: later reads, and later
// reads within a deadline they meet.
TEST_F(SqliteConnection, WithinStopsAReadAtItsDeadlineAndGoesOn) {
  Connection c((dir_ / "db.sqlite3").string(), false, "NORMAL");
  std::int64_t counted = -1;
  const auto started = std::chrono::steady_clock::now();
  const bool finished = c.within(std::chrono::milliseconds(5), [&] {
    auto s = c.prepare(kCountToMany);
    if (s.step()) counted = s.int64(0);
  });
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_FALSE(finished);
  EXPECT_EQ(counted, -1);
  EXPECT_LT(took, std::chrono::seconds(2));  // a hundred million rows take far longer

  {
    auto one = c.prepare(kOne);
    ASSERT_TRUE(one.step());
    EXPECT_EQ(one.int64(0), 1);
  }

  std::int64_t got = 0;
  EXPECT_TRUE(c.within(std::chrono::seconds(10), [&] {
    auto s = c.prepare(kOne);
    if (s.step()) got = s.int64(0);
  }));
  EXPECT_EQ(got, 1);
  // The deadline is gone once `within` returns: a long read outside it runs to its end.
  auto bounded = c.prepare(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 300000) "
      "SELECT count(*) FROM n");
  ASSERT_TRUE(bounded.step());
  EXPECT_EQ(bounded.int64(0), 300000);
}

// Other errors are not taken for the deadline.
TEST_F(SqliteConnection, WithinLetsOtherErrorsThrough) {
  Connection c((dir_ / "db.sqlite3").string(), false, "NORMAL");
  EXPECT_ANY_THROW(c.within(std::chrono::seconds(10), [&] { c.prepare("SELECT * FROM missing"); }));
}

}  // namespace
