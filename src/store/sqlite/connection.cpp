#include "store/sqlite/connection.hpp"

#include "store/sqlite/wal_batching_vfs.hpp"

#include <sqlite3.h>
#include <strings.h>
#include <time.h>

#include <iterator>
#include <utility>

#include "common/unicode.hpp"
#include "store/store.hpp"

namespace chat::store::sqlite {
namespace {

[[noreturn]] void fail(sqlite3* db, int rc, const char* what) {
  if (rc == SQLITE_CONSTRAINT || (rc & 0xFF) == SQLITE_CONSTRAINT) throw ConstraintViolation();
  if ((rc & 0xFF) == SQLITE_INTERRUPT) throw Interrupted();
  std::string msg = std::string("sqlite ") + what + ": " +
                    (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  throw Unavailable(msg);
}

// unicode_lower(text): the text lower-cased in every script (SQLite's lower() folds ASCII
// only); NULL stays NULL.
void unicode_lower(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  const auto* text = sqlite3_value_text(argv[0]);
  if (text == nullptr) {
    sqlite3_result_null(ctx);
    return;
  }
  const std::string_view in(reinterpret_cast<const char*>(text),
                            static_cast<std::size_t>(sqlite3_value_bytes(argv[0])));
  const std::string out = unicode::to_lower(in);
  sqlite3_result_text(ctx, out.data(), static_cast<int>(out.size()), SQLITE_TRANSIENT);
}

}  // namespace

Statement::~Statement() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Statement& Statement::bind(int index, std::int64_t value) {
  if (int rc = sqlite3_bind_int64(stmt_, index, value); rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  if (int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                                 SQLITE_TRANSIENT);
      rc != SQLITE_OK) {
    fail(db_, rc, "bind");
  }
  return *this;
}

Statement& Statement::bind_null(int index) {
  if (int rc = sqlite3_bind_null(stmt_, index); rc != SQLITE_OK) fail(db_, rc, "bind");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db_, sqlite3_extended_errcode(db_), "step");
}

int Statement::exec() {
  while (step()) {
  }
  return sqlite3_changes(db_);
}

std::int64_t Statement::int64(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

std::string Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
}

bool Statement::is_null(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

std::optional<std::int64_t> Statement::optional_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

Connection::Connection(const std::string& path, bool read_only, const std::string& synchronous) {
  // Once, before the first connection: SQLite's allocation statistics take a global mutex
  // on every malloc and free, and nothing here reads them. Savepoint and statement journals
  // (undo copies of the pages a write changes) stay in memory, never spilling to a file
  // (see the writer's pragmas below). (After sqlite3_initialize this is refused, harmlessly.)
  static const int configured =
      sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) | sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, -1);
  (void)configured;
  const int flags =
      (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_NOMUTEX;
  // The writer gathers each commit's WAL frames into one write (wal_batching_vfs.hpp);
  // with synchronous=FULL every commit is synced anyway, and SQLite may split frames.
  const bool full = strcasecmp(synchronous.c_str(), "full") == 0;
  const char* vfs = (!read_only && !full) ? wal_batching_vfs() : nullptr;
  if (int rc = sqlite3_open_v2(path.c_str(), &db_, flags, vfs); rc != SQLITE_OK) {
    std::string msg = "cannot open SQLite database '" + path +
                      "': " + (db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    sqlite3_close(db_);
    db_ = nullptr;
    throw Unavailable(msg);
  }
  // Writers wait for each other instead of failing at once; WAL lets readers run beside
  // the writer. synchronous=NORMAL in WAL mode loses at most the last transactions on a
  // power cut, never consistency; FULL makes every commit durable (README, durability).
  sqlite3_busy_timeout(db_, 5000);
  sqlite3_create_function_v2(db_, "unicode_lower", 1,
                             SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
                             unicode_lower, nullptr, nullptr, nullptr);
  std::string pragmas = "PRAGMA foreign_keys=ON; PRAGMA synchronous=" + synchronous + ";";
  // Savepoints (the writes of a redone group, Database::redo_group) and statements that may
  // fail halfway keep undo copies of the pages they change, which would spill to a temporary
  // file past 64 KiB, a pwrite per page, so they stay in memory, in 1 KiB pieces. Not in one
  // larger block: with a spill threshold of about 128 KiB or more, SQLite 3.40 fails every
  // statement whose journal outgrows the threshold with SQLITE_FULL (deleting a chat of 1,500
  // messages did; so did pruning events).
  //
  // Checkpoints copy every page the WAL holds into the database file (and sync it): at 10,000
  // pages instead of SQLite's 1,000, a page rewritten by many commits is copied once, and
  // checkpoints are a tenth as frequent (Database moves them off the writer's thread:
  // checkpointer.hpp).
  //
  // The writer keeps up to 64 MiB of pages (SQLite's default is 2 MiB): its cache stays valid from
  // one transaction to the next, as no other connection writes, and the index pages that messages
  // to a thousand chats touch were read again with a pread each.
  //
  // A WAL that grew past 64 MiB (one large write, or readers holding checkpoints back) is cut
  // back to that when a write starts it over after a complete checkpoint; it kept its largest
  // size on disk for good. Below that it is reused as it is, as SQLite does by default.
  if (!read_only) {
    pragmas =
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=10000; "
        "PRAGMA cache_size=-65536; PRAGMA journal_size_limit=67108864; " +
        pragmas;
  }
  // Readers map the file instead of copying pages out of it with a system call each: the
  // kernel's page cache is the cache (up to 1 GiB of the file: address space, not memory).
  if (read_only) pragmas += " PRAGMA mmap_size=1073741824;";
  exec_script(pragmas);
}

void Connection::rollback_quietly() noexcept {
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

namespace {

// This thread's CPU time: a wall-clock deadline also counted the time other threads had the
// core (four reader threads sharing one: four times the work).
std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

bool Connection::within(std::chrono::microseconds budget, const std::function<void()>& f) {
  // The thread's CPU time, and, for pages read from disk (which cost no CPU), the wall
  // clock at eight times the budget (four reader threads may share a core).
  struct Deadline {
    std::chrono::nanoseconds cpu;
    std::chrono::steady_clock::time_point wall;
  };
  const Deadline deadline{thread_cpu_time() + budget,
                          std::chrono::steady_clock::now() + 8 * budget};
  // Asked every 10,000 virtual machine steps (some tens of µs): the CPU clock is a system
  // call.
  sqlite3_progress_handler(
      db_, 10000,
      [](void* at) {
        const auto& d = *static_cast<const Deadline*>(at);
        return thread_cpu_time() > d.cpu || std::chrono::steady_clock::now() > d.wall ? 1 : 0;
      },
      const_cast<Deadline*>(&deadline));
  struct Off {
    sqlite3* db;
    ~Off() { sqlite3_progress_handler(db, 0, nullptr, nullptr); }
  } off{db_};
  try {
    f();
  } catch (const Interrupted&) {
    return false;
  }
  return true;
}

Statement Connection::prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    if (int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        rc != SQLITE_OK) {
      fail(db_, rc, "prepare");
    }
    it = cache_.emplace(sql, stmt).first;
  }
  return Statement(db_, it->second);
}

void Connection::exec_script(const std::string& sql) {
  char* err = nullptr;
  if (int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err); rc != SQLITE_OK) {
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw Unavailable("sqlite: " + msg);
  }
}

std::int64_t Connection::total_changes() const {
  return sqlite3_total_changes64(db_);
}

std::int64_t Connection::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

void Connection::run_deferred() {
  auto steps = std::exchange(deferred_, {});
  for (auto step = steps.begin(); step != steps.end(); ++step) {
    try {
      (*step)(*this);
    } catch (...) {
      // The step that failed stays queued with those after it: the transaction cannot
      // commit without them (its COMMIT runs them again, or it is rolled back).
      deferred_.insert(deferred_.begin(), std::make_move_iterator(step),
                       std::make_move_iterator(steps.end()));
      throw;
    }
  }
}

void Connection::drop_deferred_from(std::size_t mark) {
  if (deferred_.size() > mark) deferred_.resize(mark);
}

namespace {
Transaction::Kind kind_in(const Connection& c) {
  if (!c.in_group()) return Transaction::Kind::own;
  return c.isolating() ? Transaction::Kind::savepoint : Transaction::Kind::in_group;
}
}  // namespace

// Transaction control runs as cached prepared statements: parsing "SAVEPOINT tx" for
// every write of a group cost more than running it.
Transaction::Transaction(Connection& conn)
    : conn_(conn),
      kind_(kind_in(conn)),
      deferred_mark_(conn.deferred_count()),
      changes_mark_(conn.total_changes()) {
  if (kind_ == Kind::own) conn_.prepare(kBeginImmediate).exec();
  if (kind_ == Kind::savepoint) conn_.prepare(kSavepoint).exec();
}

Transaction::~Transaction() {
  if (done_) return;
  conn_.drop_deferred_from(deferred_mark_);
  switch (kind_) {
    case Kind::own:
      sqlite3_exec(conn_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      return;
    case Kind::savepoint:
      sqlite3_exec(conn_.handle(), "ROLLBACK TO tx; RELEASE tx", nullptr, nullptr, nullptr);
      return;
    case Kind::in_group:
      // Nothing to undo when its statements changed no row (a check that failed first).
      if (conn_.total_changes() != changes_mark_) conn_.want_group_undo();
      return;
  }
}

void Transaction::commit() {
  if (kind_ == Kind::own) {
    conn_.run_deferred();
    conn_.prepare(kCommit).exec();
  }
  if (kind_ == Kind::savepoint) conn_.prepare(kRelease).exec();
  done_ = true;
}

}  // namespace chat::store::sqlite
