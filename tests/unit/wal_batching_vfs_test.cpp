// The WAL-gathering VFS: every commit is readable by another connection the moment it
// returns, big and small transactions alike, and the file is sound afterwards.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "store/sqlite/wal_batching_vfs.hpp"

namespace {

struct Db {
  sqlite3* db = nullptr;
  Db(const std::string& path, const char* vfs, int flags) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, flags, vfs), SQLITE_OK);
  }
  ~Db() { sqlite3_close(db); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  void exec(const std::string& sql) const {
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error != nullptr ? error : "") << " in " << sql;
  }
  [[nodiscard]] std::int64_t scalar(const std::string& sql) const {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK);
    std::int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }
  [[nodiscard]] std::string text(const std::string& sql) const {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK);
    std::string v;
    if (sqlite3_step(s) == SQLITE_ROW) v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
  }
};

// An empty folder for one test's database, named after the test and this process.
std::filesystem::path fresh_dir(const std::string& name) {
  auto dir =
      std::filesystem::temp_directory_path() / ("chatd-" + name + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The log every test writes through: WAL with the gathering VFS's sync mode, a page cache of
// `cache_size` (SQLite's PRAGMA value) and one table.
std::string log_setup(int cache_size) {
  return "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=" +
         std::to_string(cache_size) + "; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);";
}

}  // namespace

TEST(WalBatchingVfs, EveryCommitIsVisibleToReadersAtOnce) {
  const auto dir = fresh_dir("wal");
  const std::string path = (dir / "db.sqlite3").string();
  {
    Db writer(path, chat::store::sqlite::wal_batching_vfs(),
              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    writer.exec(log_setup(50));
    Db reader(path, nullptr, SQLITE_OPEN_READONLY);
    const std::string big(3000, 'x');
    for (int i = 1; i <= 300; ++i) {
      // Small transactions, and now and then one larger than the writer's page cache, so
      // SQLite spills frames before the commit and reads them back.
      const int rows = i % 50 == 0 ? 400 : 3;
      writer.exec("BEGIN");
      for (int r = 0; r < rows; ++r) {
        writer.exec("INSERT INTO t(v) VALUES ('" + big + std::to_string(i) + "')");
      }
      writer.exec("COMMIT");
      ASSERT_EQ(reader.scalar("SELECT count(*) FROM t"), writer.scalar("SELECT count(*) FROM t"))
          << "after commit " << i;
      ASSERT_EQ(reader.text("SELECT substr(v, 3001) FROM t ORDER BY id DESC LIMIT 1"),
                std::to_string(i));
    }
    writer.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    writer.exec("INSERT INTO t(v) VALUES ('after the checkpoint')");
    EXPECT_EQ(reader.text("SELECT v FROM t ORDER BY id DESC LIMIT 1"), "after the checkpoint");
  }
  // Reopened by the default VFS: everything is there and the file is sound.
  Db again(path, nullptr, SQLITE_OPEN_READONLY);
  EXPECT_EQ(again.scalar("SELECT count(*) FROM t"), 6 * 400 + 294 * 3 + 1);
  EXPECT_EQ(again.text("PRAGMA integrity_check"), "ok");
  std::filesystem::remove_all(dir);
}

// A group commit larger than the gathering buffer (2 MiB) and held entirely in the page
// cache: its frames go out in pieces before the commit frame, and readers see all of it
// at once, never a part.
TEST(WalBatchingVfs, ACommitLargerThanTheBufferIsSeenWhole) {
  const auto dir = fresh_dir("wal-big");
  const std::string path = (dir / "db.sqlite3").string();
  {
    Db writer(path, chat::store::sqlite::wal_batching_vfs(),
              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    writer.exec(log_setup(-65536));
    Db reader(path, nullptr, SQLITE_OPEN_READONLY);
    const std::string big(3000, 'x');
    for (int round = 1; round <= 3; ++round) {
      writer.exec("BEGIN");
      for (int r = 0; r < 2000; ++r) writer.exec("INSERT INTO t(v) VALUES ('" + big + "')");
      EXPECT_EQ(reader.scalar("SELECT count(*) FROM t"), (round - 1) * 2000);
      writer.exec("COMMIT");
      ASSERT_EQ(reader.scalar("SELECT count(*) FROM t"), round * 2000);
    }
  }
  Db again(path, nullptr, SQLITE_OPEN_READONLY);
  EXPECT_EQ(again.scalar("SELECT count(*) FROM t"), 6000);
  EXPECT_EQ(again.text("PRAGMA integrity_check"), "ok");
  std::filesystem::remove_all(dir);
}

// A commit is on file when COMMIT returns, even if the process then ends without closing
// anything: nothing may be left gathered. The transaction spills pages before its commit
// and changes them again afterwards, so SQLite rewrites frames in place and re-checksums
// their headers after the commit frame.
TEST(WalBatchingVfs, ACommitSurvivesTheProcessEndingAtOnce) {
  const auto dir = fresh_dir("wal-exit");
  const std::string path = (dir / "db.sqlite3").string();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        chat::store::sqlite::wal_batching_vfs()) != SQLITE_OK) {
      _exit(2);
    }
    const std::string big(2000, 'y');
    std::string sql = log_setup(20) + " BEGIN;";
    for (int i = 0; i < 300; ++i) sql += "INSERT INTO t(v) VALUES ('" + big + "');";
    sql += "UPDATE t SET v = v || 'z'; UPDATE t SET v = v || 'w' WHERE id % 3 = 0; COMMIT;";
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    _exit(rc == SQLITE_OK ? 0 : 3);  // no close, no final checkpoint
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  Db after(path, nullptr, SQLITE_OPEN_READWRITE);
  EXPECT_EQ(after.scalar("SELECT count(*) FROM t"), 300);
  EXPECT_EQ(after.scalar("SELECT count(*) FROM t WHERE v LIKE '%zw'"), 100);
  EXPECT_EQ(after.text("PRAGMA integrity_check"), "ok");
  std::filesystem::remove_all(dir);
}
