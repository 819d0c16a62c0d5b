// SQLite group commit: writes queued together share one COMMIT, each in its own savepoint,
// so one that fails undoes only itself, and no caller hears back before the COMMIT.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <stdexcept>

#include "metrics/metrics.hpp"
#include "store/sqlite/database.hpp"

using namespace chat::store::sqlite;

namespace {

std::filesystem::path scratch_dir() {
  auto dir = std::filesystem::temp_directory_path() / ("chatd-group-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::int64_t count_where(Database& db, const char* sql) {
  return db.write_blocking([sql](Connection& c) {
    auto s = c.prepare(sql);
    return s.step() ? s.int64(0) : std::int64_t{-1};
  });
}

struct Tally {
  int ok = 0;
  int failed = 0;
};

// Each write inserts, then every seventh changes its mind after the insert. A free
// function, not a lambda: the coroutine outlives the loop that starts it.
boost::asio::awaitable<void> insert_or_undo(Database& db, int i, Tally& tally) {
  auto job = [i](Connection& c) {
    Transaction tx(c);
    c.prepare("INSERT INTO t(x) VALUES (?1)").bind(1, i).exec();
    if (i % 7 == 0) throw std::runtime_error("undone");
    tx.commit();
  };
  try {
    co_await db.write(std::move(job));
    ++tally.ok;
  } catch (const std::runtime_error&) {
    ++tally.failed;
  }
}

}  // namespace

TEST(SqliteGroupCommit, QueuedWritesShareCommitsAndFailAlone) {
  const auto dir = scratch_dir();
  {
    Database db((dir / "db.sqlite3").string(), "NORMAL", 1);
    db.write_blocking([](Connection& c) { c.exec_script("CREATE TABLE t(x INTEGER)"); });
    const auto before = db.groups_committed();
    const auto timed = chat::metrics::DbCallMetrics::of("sqlite", "write");
    const auto timed_before = timed.seconds.snapshot().count;
    const auto errors_before = timed.errors.value();

    boost::asio::io_context io;
    constexpr int kWrites = 200;
    Tally tally;
    for (int i = 0; i < kWrites; ++i) {
      boost::asio::co_spawn(io, insert_or_undo(db, i, tally), boost::asio::detached);
    }
    io.run();
    EXPECT_EQ(tally.failed, (kWrites + 6) / 7);
    EXPECT_EQ(tally.ok, kWrites - tally.failed);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t"), tally.ok);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x % 7 = 0"), 0);
    // Queued together, they needed fewer commits than writes.
    const auto commits = db.groups_committed() - before;
    EXPECT_GE(commits, 1U);
    EXPECT_LT(commits, static_cast<std::uint64_t>(kWrites));
    // /metrics times every write to its commit, and counts the ones that failed.
    EXPECT_EQ(timed.seconds.snapshot().count - timed_before, static_cast<std::uint64_t>(kWrites));
    EXPECT_EQ(timed.errors.value() - errors_before, static_cast<std::uint64_t>(tally.failed));
  }
  std::filesystem::remove_all(dir);
}

// /metrics times reads and scans, and counts the ones that throw as errors.
TEST(SqliteReads, AreTimedAndFailuresCounted) {
  const auto dir = scratch_dir();
  {
    Database db((dir / "db.sqlite3").string(), "NORMAL", 1);
    db.write_blocking([](Connection& c) { c.exec_script("CREATE TABLE t(x INTEGER)"); });
    const auto reads = chat::metrics::DbCallMetrics::of("sqlite", "read");
    const auto scans = chat::metrics::DbCallMetrics::of("sqlite", "scan");
    const auto reads_before = reads.seconds.snapshot().count;
    const auto scans_before = scans.seconds.snapshot().count;
    const auto read_errors = reads.errors.value();
    const auto scan_errors = scans.errors.value();

    boost::asio::io_context io;
    int failures = 0;
    auto calls = [&]() -> boost::asio::awaitable<void> {
      auto count = [](Connection& c) {
        auto s = c.prepare("SELECT count(*) FROM t");
        return s.step() ? s.int64(0) : std::int64_t{-1};
      };
      auto broken = [](Connection& c) { c.prepare("SELECT nonsense FROM nowhere").step(); };
      EXPECT_EQ(co_await db.read(count), 0);
      EXPECT_EQ(co_await db.scan(count), 0);
      try {
        co_await db.read(broken);
      } catch (const std::exception&) {
        ++failures;
      }
      try {
        co_await db.scan(broken);
      } catch (const std::exception&) {
        ++failures;
      }
    };
    boost::asio::co_spawn(io, calls(), boost::asio::detached);
    io.run();
    EXPECT_EQ(failures, 2);
    EXPECT_EQ(reads.seconds.snapshot().count - reads_before, 2U);
    EXPECT_EQ(scans.seconds.snapshot().count - scans_before, 2U);
    EXPECT_EQ(reads.errors.value() - read_errors, 1U);
    EXPECT_EQ(scans.errors.value() - scan_errors, 1U);
  }
  std::filesystem::remove_all(dir);
}
