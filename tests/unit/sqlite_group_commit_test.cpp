// SQLite group commit: writes queued together share one COMMIT, one that fails undoes only
// itself (the group is rolled back and its writes run again, each in a savepoint), and no
// caller hears back before the COMMIT.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

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

// Runs `writes(i)` for i in [0, n) queued together (they share groups), then the loop.
template <class Write>
void run_together(int n, Write writes) {
  boost::asio::io_context io;
  for (int i = 0; i < n; ++i) boost::asio::co_spawn(io, writes(i), boost::asio::detached);
  io.run();
}

struct Tally {
  int ok = 0;
  int failed = 0;
};

// Each write inserts, then every seventh changes its mind after the insert. With `index`,
// write i also queues (Connection::defer) an index entry "word" under rowid i, and every
// tenth takes back the entry of the write before it, which may still be queued in the
// same group. A free function, not a lambda: the coroutine outlives the loop that starts it.
boost::asio::awaitable<void> insert_or_undo(Database& db, int i, Tally& tally, bool index = false) {
  auto job = [i, index](Connection& c) {
    Transaction tx(c);
    c.prepare("INSERT INTO t(x) VALUES (?1)").bind(1, i).exec();
    if (index) {
      c.defer([i](Connection& conn) {
        conn.prepare("INSERT INTO f(rowid, text) VALUES (?1, 'word')").bind(1, i).exec();
      });
    }
    if (index && i % 10 == 0 && i > 0) {
      c.defer([i](Connection& conn) {
        conn.prepare("DELETE FROM f WHERE rowid = ?1").bind(1, i - 1).exec();
      });
    }
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
    // Group commits, from /metrics (one test at a time: the change is this database's).
    const auto& commits = chat::metrics::metrics().sqlite_commits;
    const auto before = commits.value();
    const auto timed = chat::metrics::DbCallMetrics::of("sqlite", "write");
    const auto timed_before = timed.seconds.snapshot().count;
    const auto errors_before = timed.errors.value();

    const auto& redos = chat::metrics::metrics().sqlite_group_redos;
    const auto redos_before = redos.value();
    constexpr int kWrites = 200;
    Tally tally;
    run_together(kWrites, [&](int i) { return insert_or_undo(db, i, tally); });
    EXPECT_EQ(tally.failed, (kWrites + 6) / 7);
    EXPECT_EQ(tally.ok, kWrites - tally.failed);
    // Each failure after its insert undid the group that held it, which ran again.
    EXPECT_GE(redos.value() - redos_before, 1U);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t"), tally.ok);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x % 7 = 0"), 0);
    // Queued together, they needed fewer commits than writes.
    const auto committed = commits.value() - before;
    EXPECT_GE(committed, 1U);
    EXPECT_LT(committed, static_cast<std::uint64_t>(kWrites));
    // /metrics times every write to its commit, and counts the ones that failed.
    EXPECT_EQ(timed.seconds.snapshot().count - timed_before, static_cast<std::uint64_t>(kWrites));
    EXPECT_EQ(timed.errors.value() - errors_before, static_cast<std::uint64_t>(tally.failed));
  }
  std::filesystem::remove_all(dir);
}

// A write that gives up before it changes a row (a check that failed) needs no undoing:
// the group goes on, and no write runs twice.
TEST(SqliteGroupCommit, AWriteThatChangedNothingUndoesNothing) {
  const auto dir = scratch_dir();
  {
    Database db((dir / "db.sqlite3").string(), "NORMAL", 1);
    db.write_blocking([](Connection& c) { c.exec_script("CREATE TABLE t(x INTEGER UNIQUE)"); });
    const auto& redos = chat::metrics::metrics().sqlite_group_redos;
    const auto& commits = chat::metrics::metrics().sqlite_commits;
    const auto redos_before = redos.value();
    const auto commits_before = commits.value();
    constexpr int kWrites = 200;
    std::vector<int> runs(kWrites, 0);  // written on the writer thread only
    int refused = 0;
    run_together(kWrites, [&](int i) -> boost::asio::awaitable<void> {
      const bool written = co_await db.write([i, &runs](Connection& c) {
        ++runs[static_cast<std::size_t>(i)];
        Transaction tx(c);
        if (i % 5 == 0) return false;  // refused before any change
        // Every tenth repeats the value before it: the UNIQUE constraint fails the statement,
        // which changes nothing.
        const int x = i % 10 == 9 ? i - 1 : i;
        try {
          c.prepare("INSERT INTO t(x) VALUES (?1)").bind(1, x).exec();
        } catch (const ConstraintViolation&) {
          return false;
        }
        tx.commit();
        return true;
      });
      if (!written) ++refused;
    });
    EXPECT_EQ(refused, kWrites / 5 + kWrites / 10);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t"), kWrites - refused);
    EXPECT_EQ(redos.value() - redos_before, 0U);
    EXPECT_LT(commits.value() - commits_before, static_cast<std::uint64_t>(kWrites));
    EXPECT_EQ(std::count(runs.begin(), runs.end(), 1), kWrites);
  }
  std::filesystem::remove_all(dir);
}

// A Transaction inside a write's own that rolls back after changing rows undoes only its
// rows: the group runs again, each write in a savepoint, and the outer write's rows stay.
// The writes of an undone group register their after-commit hooks once more as they run
// again; each hook runs once.
TEST(SqliteGroupCommit, AnInnerRollbackUndoesOnlyItsOwnRows) {
  const auto dir = scratch_dir();
  {
    Database db((dir / "db.sqlite3").string(), "NORMAL", 1);
    db.write_blocking([](Connection& c) { c.exec_script("CREATE TABLE t(x INTEGER)"); });
    const auto& redos = chat::metrics::metrics().sqlite_group_redos;
    const auto redos_before = redos.value();
    constexpr int kWrites = 200;
    std::vector<int> runs(kWrites, 0);   // writer thread only
    std::vector<int> hooks(kWrites, 0);  // writer thread only
    std::vector<int> answers(kWrites, 0);
    int written = 0;
    run_together(kWrites, [&](int i) -> boost::asio::awaitable<void> {
      // Each answers the how-manieth run it was: the caller hears the last one.
      answers[static_cast<std::size_t>(i)] =
          co_await db.write([i, &runs, &hooks, &db](Connection& c) {
            const int run = ++runs[static_cast<std::size_t>(i)];
            Transaction outer(c);
            c.prepare("INSERT INTO t(x) VALUES (?1)").bind(1, i).exec();
            if (i % 7 == 0) {
              Transaction inner(c);
              c.prepare("INSERT INTO t(x) VALUES (?1)").bind(1, -i - 1).exec();
            }  // rolled back
            c.prepare("INSERT INTO t(x) VALUES (?1)").bind(1, 1000 + i).exec();
            db.after_commit([i, &hooks] { ++hooks[static_cast<std::size_t>(i)]; });
            outer.commit();
            return run;
          });
      ++written;
    });
    EXPECT_EQ(written, kWrites);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x < 0"), 0);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x >= 0 AND x < 1000"), kWrites);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x >= 1000"), kWrites);
    EXPECT_GE(redos.value() - redos_before, 1U);
    // Some ran twice (their group was undone), and every hook ran exactly once.
    EXPECT_GT(std::count(runs.begin(), runs.end(), 2), 0);
    EXPECT_EQ(std::count(hooks.begin(), hooks.end(), 1), kWrites);
    EXPECT_EQ(answers, runs);

    // Later groups start afresh: writes one after another (a group each) run once and
    // undo nothing, and an inner rollback then redoes its group once more.
    const auto redos_later = redos.value();
    std::vector<int> later(21, 0);  // writer thread only
    boost::asio::io_context io;
    auto one_by_one = [&]() -> boost::asio::awaitable<void> {
      for (int k = 0; k < 20; ++k) {
        co_await db.write([k, &later](Connection& c) {
          ++later[static_cast<std::size_t>(k)];
          Transaction tx(c);
          c.prepare("INSERT INTO t(x) VALUES (?1)").bind(1, 2000 + k).exec();
          tx.commit();
        });
      }
      co_await db.write([&later](Connection& c) {
        ++later[20];
        Transaction outer(c);
        c.prepare("INSERT INTO t(x) VALUES (3000)").exec();
        {
          Transaction inner(c);
          c.prepare("INSERT INTO t(x) VALUES (-3000)").exec();
        }
        outer.commit();
      });
    };
    boost::asio::co_spawn(io, one_by_one(), boost::asio::detached);
    io.run();
    EXPECT_EQ(std::count(later.begin(), later.begin() + 20, 1), 20);
    EXPECT_EQ(later[20], 2);
    EXPECT_EQ(redos.value() - redos_later, 1U);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x < 0"), 0);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x >= 2000 AND x < 3000"), 20);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x = 3000"), 1);
  }
  std::filesystem::remove_all(dir);
}

// A write whose savepoint journal (the undo copies of the pages it changes) runs to
// megabytes commits. (With the journal's spill threshold at about 128 KiB or more, SQLite
// 3.40 failed such a statement with SQLITE_FULL: chats with many messages could not be
// deleted, nor old events pruned.) The write first rolls back an inner Transaction that
// changed a row, so that its group is redone and it runs again in a savepoint.
TEST(SqliteGroupCommit, WritesLargerThanTheJournalInMemoryCommit) {
  const auto dir = scratch_dir();
  {
    Database db((dir / "db.sqlite3").string(), "NORMAL", 1);
    db.write_blocking([](Connection& c) {
      c.exec_script(
          "CREATE TABLE t(x BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM "
          "n WHERE i < 20000) INSERT INTO t(x) SELECT randomblob(200) FROM n");
    });
    const auto& redos = chat::metrics::metrics().sqlite_group_redos;
    const auto redos_before = redos.value();
    boost::asio::io_context io;
    std::int64_t changed = 0;
    auto rewrite = [&]() -> boost::asio::awaitable<void> {
      try {
        // About 1,000 pages: 4 MiB of undo copies in the write's savepoint.
        changed = co_await db.write([](Connection& c) {
          Transaction tx(c);
          {
            Transaction undone(c);
            c.prepare("INSERT INTO t(x) VALUES (NULL)").exec();
          }
          const auto n = c.prepare("UPDATE t SET x = randomblob(200)").exec();
          tx.commit();
          return static_cast<std::int64_t>(n);
        });
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    };
    boost::asio::co_spawn(io, rewrite(), boost::asio::detached);
    io.run();
    EXPECT_EQ(changed, 20000);
    EXPECT_EQ(redos.value() - redos_before, 1U);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t WHERE x IS NULL"), 0);
  }
  std::filesystem::remove_all(dir);
}

// The WAL file is cut back once a write starts it over after a complete checkpoint: a
// WAL grown large (one big write, or readers holding checkpoints back) kept its largest
// size on disk for good.
TEST(SqliteGroupCommit, AWalGrownLargeIsCutBack) {
  const auto dir = scratch_dir();
  const auto wal = dir / "db.sqlite3-wal";
  {
    Database db((dir / "db.sqlite3").string(), "NORMAL", 1);
    // 96 MiB in one transaction: the WAL holds all of it until a checkpoint copies it.
    db.write_blocking([](Connection& c) {
      c.exec_script(
          "CREATE TABLE t(x BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM "
          "n WHERE i < 96) INSERT INTO t(x) SELECT zeroblob(1048576) FROM n");
    });
    const auto grown = std::filesystem::file_size(wal);
    EXPECT_GT(grown, 96U << 20);
    // Once every frame is copied (the background checkpoint may be at it too), the next
    // write starts the WAL over. The background one holds the checkpoint lock while it
    // copies and syncs 96 MiB twice, seconds on a slow disk, so the wait is a deadline.
    bool copied = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!copied && std::chrono::steady_clock::now() < deadline) {
      copied = db.write_blocking([](Connection& c) {
        auto s = c.prepare("PRAGMA wal_checkpoint(PASSIVE)");  // busy, frames, copied
        return s.step() && s.int64(0) == 0 && s.int64(1) == s.int64(2);
      });
      if (!copied) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(copied);
    db.write_blocking([](Connection& c) { c.exec_script("INSERT INTO t(x) VALUES (1)"); });
    EXPECT_LE(std::filesystem::file_size(wal), 64U << 20) << "grown to " << grown;
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

namespace {

std::vector<std::int64_t> indexed_rowids(Database& db, const char* match) {
  return db.write_blocking([match](Connection& c) {
    std::vector<std::int64_t> out;
    auto s = c.prepare("SELECT rowid FROM f WHERE f MATCH ?1 ORDER BY rowid");
    s.bind(1, match);
    while (s.step()) out.push_back(s.int64(0));
    return out;
  });
}

}  // namespace

// Deferred writes (the full-text index) run at their group's COMMIT in the order they were
// queued, and go with a write that fails.
TEST(SqliteGroupCommit, DeferredWritesRunInOrderAtCommitAndGoWithAFailedWrite) {
  const auto dir = scratch_dir();
  {
    Database db((dir / "db.sqlite3").string(), "NORMAL", 1);
    db.write_blocking([](Connection& c) {
      c.exec_script("CREATE TABLE t(x INTEGER); CREATE VIRTUAL TABLE f USING fts5(text)");
    });
    // Group commits, from /metrics (one test at a time: the change is this database's).
    const auto& commits = chat::metrics::metrics().sqlite_commits;
    const auto before = commits.value();
    constexpr int kWrites = 200;
    Tally tally;
    run_together(kWrites, [&](int i) { return insert_or_undo(db, i, tally, true); });
    EXPECT_LT(commits.value() - before, static_cast<std::uint64_t>(kWrites));
    std::vector<std::int64_t> expected;
    for (int i = 0; i < kWrites; ++i) {
      const bool committed = i % 7 != 0;
      const bool taken_back = (i + 1) % 10 == 0 && (i + 1) % 7 != 0 && i + 1 < kWrites;
      if (committed && !taken_back) expected.push_back(i);
    }
    EXPECT_EQ(indexed_rowids(db, "word"), expected);

    // Outside a group, a Transaction runs what it deferred before its own COMMIT, and
    // drops it when it rolls back.
    db.write_blocking([](Connection& c) {
      {
        Transaction tx(c);
        c.defer([](Connection& conn) {
          conn.prepare("INSERT INTO f(rowid, text) VALUES (1000, 'alone')").exec();
        });
        tx.commit();
      }
      {
        Transaction tx(c);
        c.defer([](Connection& conn) {
          conn.prepare("INSERT INTO f(rowid, text) VALUES (1001, 'alone')").exec();
        });
      }
      EXPECT_EQ(c.deferred_count(), 0U);
    });
    EXPECT_EQ(indexed_rowids(db, "alone"), std::vector<std::int64_t>{1000});
  }
  std::filesystem::remove_all(dir);
}

// A write that runs the group's queued steps early (as a chat's purge does, while the rows
// its index entries were made from are still there) and meets one that fails fails itself,
// and the group does not commit without that step: the write that queued it fails too.
TEST(SqliteGroupCommit, AQueuedStepThatFailsEarlyIsNotLost) {
  const auto dir = scratch_dir();
  {
    Database db((dir / "db.sqlite3").string(), "NORMAL", 1);
    db.write_blocking([](Connection& c) {
      c.exec_script(
          "CREATE TABLE t(x INTEGER); CREATE TABLE u(x INTEGER UNIQUE);"
          "INSERT INTO u(x) VALUES (1)");
    });
    bool queued_failed = false;
    bool early_failed = false;
    bool shared_group = false;  // written on the writer thread, read after the loop
    boost::asio::io_context io;
    auto queuer = [&]() -> boost::asio::awaitable<void> {
      try {
        co_await db.write([](Connection& c) {
          Transaction tx(c);
          c.prepare("INSERT INTO t(x) VALUES (1)").exec();
          // Fails when it runs: u already holds 1.
          c.defer([](Connection& conn) { conn.prepare("INSERT INTO u(x) VALUES (1)").exec(); });
          tx.commit();
          // Time for the next write to queue behind this one (a group holds what queued).
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        });
      } catch (const std::exception&) {
        queued_failed = true;
      }
    };
    auto early = [&]() -> boost::asio::awaitable<void> {
      try {
        co_await db.write([&shared_group](Connection& c) {
          shared_group = c.deferred_count() > 0;
          c.run_deferred();
          Transaction tx(c);
          c.prepare("INSERT INTO t(x) VALUES (2)").exec();
          tx.commit();
        });
      } catch (const std::exception&) {
        early_failed = true;
      }
    };
    boost::asio::co_spawn(io, queuer(), boost::asio::detached);
    boost::asio::co_spawn(io, early(), boost::asio::detached);
    io.run();
    ASSERT_TRUE(shared_group);
    EXPECT_TRUE(early_failed);
    EXPECT_TRUE(queued_failed);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t"), 0);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM u"), 1);
    // The writer goes on, with nothing left queued.
    bool written = false;
    boost::asio::io_context again;
    auto next = [&]() -> boost::asio::awaitable<void> {
      written = co_await db.write([](Connection& c) {
        const bool empty = c.deferred_count() == 0;
        Transaction tx(c);
        c.prepare("INSERT INTO t(x) VALUES (3)").exec();
        tx.commit();
        return empty;
      });
    };
    boost::asio::co_spawn(again, next(), boost::asio::detached);
    again.run();
    EXPECT_TRUE(written);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t"), 1);
  }
  std::filesystem::remove_all(dir);
}

namespace {

// `n` writes into t(x), one after another, each a random blob of `bytes`; returns how many
// completed.
int write_blobs(Database& db, int n, int bytes) {
  boost::asio::io_context io;
  int done = 0;
  auto writes = [&]() -> boost::asio::awaitable<void> {
    for (int i = 0; i < n; ++i) {
      co_await db.write([bytes](Connection& c) {
        Transaction tx(c);
        c.prepare("INSERT INTO t(x) VALUES (randomblob(?1))").bind(1, bytes).exec();
        tx.commit();
      });
      ++done;
    }
  };
  boost::asio::co_spawn(io, writes(), boost::asio::detached);
  io.run();
  return done;
}

// How many times the WAL started over: the checkpoint sequence number of its header
// (SQLite's documented WAL format: a big-endian 32-bit integer at byte 12).
std::uint32_t wal_restarts(const std::string& db_path) {
  std::ifstream wal(db_path + "-wal", std::ios::binary);
  unsigned char header[16] = {};
  wal.read(reinterpret_cast<char*>(header), sizeof header);
  return (std::uint32_t{header[12]} << 24U) | (std::uint32_t{header[13]} << 16U) |
         (std::uint32_t{header[14]} << 8U) | std::uint32_t{header[15]};
}

}  // namespace

// The WAL is copied back by the checkpoint thread, and restarts instead of growing: the
// writer copies only what the background left (or everything past 4x the threshold).
TEST(SqliteCheckpointer, CopiesTheWalInTheBackgroundAndKeepsItBounded) {
  const auto dir = scratch_dir();
  const auto path = (dir / "db.sqlite3").string();
  constexpr int kPages = 64;
  {
    Database db(path, "NORMAL", 1, kPages);
    db.write_blocking([](Connection& c) { c.exec_script("CREATE TABLE t(x BLOB)"); });
    const auto& background = chat::metrics::metrics().sqlite_checkpoints.with({"background"});
    const auto background_before = background.value();
    // 1,500 writes of 16 KiB each, one after another: about 6,000 pages through a WAL
    // checkpointed from 64 pages on.
    constexpr int kWrites = 1500;
    ASSERT_EQ(write_blobs(db, kWrites, 16384), kWrites);
    EXPECT_GT(background.value(), background_before);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t"), kWrites);
    // Every page is in the database file by now but what the last cycle left in the WAL,
    // and the WAL started over instead of holding all ~6,000 pages: its header counts the
    // restarts. How far past the writer's own limit (4 x 64 pages) the file grows between
    // two restarts depends on how long a background checkpoint's sync takes while writes
    // go on (the writer's own attempt is BUSY meanwhile), and a slow disk can let it reach
    // a few MB; so the size is only held below half of what was written, which a WAL that
    // never started over would pass.
    EXPECT_GE(wal_restarts(path), 2U);
    const auto wal = std::filesystem::file_size(path + "-wal");
    EXPECT_LT(wal, static_cast<std::uintmax_t>(kWrites) * 16384U / 2);
    EXPECT_GT(std::filesystem::file_size(path), static_cast<std::uintmax_t>(kWrites) * 16384U / 2);
  }
  std::filesystem::remove_all(dir);
}

namespace {

// mxFrame and nBackfill from the WAL index (the -shm file, SQLite's documented layout:
// a 48-byte header, its copy, then the checkpoint information), in native byte order.
std::pair<std::uint32_t, std::uint32_t> wal_frames_and_copied(const std::string& db_path) {
  std::ifstream shm(db_path + "-shm", std::ios::binary);
  char header[136] = {};
  shm.read(header, sizeof header);
  std::uint32_t frames = 0;
  std::uint32_t copied = 0;
  std::memcpy(&frames, header + 16, sizeof frames);
  std::memcpy(&copied, header + 96, sizeof copied);
  return {frames, copied};
}

}  // namespace

// Below the checkpoint threshold nothing copies the WAL while writes come; once they stop
// for a second, all of it is copied (the bulk on the checkpoint thread, as ever), so that
// readers can leave the WAL alone, and the next write starts the WAL over.
TEST(SqliteCheckpointer, CopiesTheWalOnceWritesStop) {
  const auto dir = scratch_dir();
  const auto path = (dir / "db.sqlite3").string();
  {
    Database db(path, "NORMAL", 1, 10'000);
    db.write_blocking([](Connection& c) { c.exec_script("CREATE TABLE t(x BLOB)"); });
    const auto& background = chat::metrics::metrics().sqlite_checkpoints.with({"background"});
    const auto background_before = background.value();
    ASSERT_EQ(write_blobs(db, 20, 4000), 20);
    auto [frames, copied] = wal_frames_and_copied(path);
    EXPECT_GT(frames, 20U);
    EXPECT_LT(copied, frames);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (copied < frames && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::tie(frames, copied) = wal_frames_and_copied(path);
    }
    EXPECT_EQ(copied, frames);
    EXPECT_GT(background.value(), background_before);
    // A few more writes: the WAL starts over instead of growing.
    ASSERT_EQ(write_blobs(db, 3, 4000), 3);
    const auto after = wal_frames_and_copied(path).first;
    EXPECT_LT(after, frames);
    EXPECT_EQ(count_where(db, "SELECT count(*) FROM t"), 23);
  }
  std::filesystem::remove_all(dir);
}
