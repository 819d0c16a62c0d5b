// One PostgreSQL connection driven by libpq in nonblocking mode on the Asio loop: the
// coroutine waits on the connection's socket instead of blocking a thread (no thread per
// query). Statements named by a static SQL string are prepared once per connection.
// A connection is used by one coroutine at a time (the pool hands it out).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/descriptor_base.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/postgres/pg_watchdog.hpp"

struct pg_conn;
struct pg_result;

namespace chat::store::postgres {

// A query failed on the server (constraint, syntax...): `sqlstate` says which.
class PgError : public std::runtime_error {
 public:
  PgError(const std::string& message, std::string sqlstate, std::string source_function = {})
      : std::runtime_error(message),
        sqlstate_(std::move(sqlstate)),
        source_function_(std::move(source_function)) {}
  [[nodiscard]] const std::string& sqlstate() const { return sqlstate_; }
  [[nodiscard]] bool unique_violation() const { return sqlstate_ == "23505"; }
  // "cached plan must not change result type": a migration (run by a newer node) changed
  // what a statement prepared earlier returns (a function's result, a table's columns).
  // Known by the server function that raises it, as the message may be translated and
  // its SQLSTATE (feature_not_supported) is shared. The statements are then prepared anew
  // (PgConnection::prepare), so the call may simply run again.
  [[nodiscard]] bool stale_plan() const {
    return sqlstate_ == "0A000" && source_function_ == "RevalidateCachedQuery";
  }

 private:
  std::string sqlstate_;
  std::string source_function_;  // PG_DIAG_SOURCE_FUNCTION: the server's C function
};

// Parameters are sent as text, like psql would; nullopt is NULL.
using PgParams = std::vector<std::optional<std::string>>;

class PgResult {
 public:
  explicit PgResult(pg_result* r = nullptr) : r_(r) {}
  PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PgResult& operator=(PgResult&& o) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult();

  [[nodiscard]] int rows() const;
  [[nodiscard]] bool is_null(int row, int col) const;
  [[nodiscard]] std::string_view text(int row, int col) const;
  [[nodiscard]] std::int64_t int64(int row, int col) const;
  [[nodiscard]] bool boolean(int row, int col) const;
  [[nodiscard]] std::int64_t affected() const;  // rows changed by INSERT/UPDATE/DELETE

 private:
  pg_result* r_;
};

// One statement of a pipeline: `sql` with static storage (prepared once per connection).
struct PgStatement {
  const char* sql;
  PgParams params;
};

class PgConnection {
 public:
  // Connects without blocking; throws store::Unavailable when the server cannot be reached.
  static boost::asio::awaitable<std::unique_ptr<PgConnection>> connect(
      boost::asio::any_io_executor executor, std::string conninfo);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs `sql` (one statement, $1.. parameters). Throws PgError for a server-side error and
  // store::Unavailable when the connection is lost.
  boost::asio::awaitable<PgResult> query(const char* sql, PgParams params = {});
  // As query(), through a statement prepared once per connection; `sql` must have static
  // storage (it is the cache key).
  boost::asio::awaitable<PgResult> prepared(const char* sql, PgParams params = {});
  // Sends several independent statements at once in libpq's pipeline mode and waits once:
  // one round trip instead of one per statement. One result per statement, in order.
  // A failing statement throws its PgError after the rest were skipped by the server.
  boost::asio::awaitable<std::vector<PgResult>> pipeline(std::vector<PgStatement> statements);
  // Runs several statements without parameters (migrations).
  boost::asio::awaitable<void> script(const std::string& sql);

  // Registers with `watchdog`, which gives up on the connection (the waiting call throws
  // store::Unavailable, and the connection counts as broken) when the server leaves a wait
  // unanswered past its timeout. Without one a wait has no limit (migrations, whose index
  // builds may take long).
  void watch(std::shared_ptr<PgWatchdog> watchdog);
  // A counter the pool's connections share: a stale plan met on one of them means the
  // schema changed for all, so each prepares its statements anew before its next use
  // instead of meeting the same error (and a retry landing on it failing again).
  void share_plan_epoch(std::shared_ptr<std::atomic<std::uint64_t>> epoch);

  // False once the connection is broken; the pool then drops it.
  [[nodiscard]] bool healthy() const;
  // Reads whatever the server sent while the connection sat idle (a restart's goodbye), so
  // a connection the server closed is known broken before a query is sent on it.
  bool still_alive();

 private:
  struct Socket;
  PgConnection(pg_conn* conn, std::unique_ptr<Socket> socket);
  boost::asio::awaitable<void> wait(boost::asio::posix::descriptor_base::wait_type type);
  boost::asio::awaitable<void> flush();
  boost::asio::awaitable<PgResult> collect();
  boost::asio::awaitable<pg_result*> next_result();
  boost::asio::awaitable<const std::string*> prepare(const char* sql);
  [[noreturn]] void fail(const PgError& failure);

  pg_conn* conn_;
  std::unique_ptr<Socket> socket_;
  std::unordered_map<const char*, std::string> statements_;  // sql -> prepared name
  bool statements_stale_ = false;  // a plan went stale: DEALLOCATE ALL before the next prepare
  std::shared_ptr<std::atomic<std::uint64_t>> plan_epoch_;
  std::uint64_t statements_epoch_ = 0;    // plan_epoch_ when statements_ were last cleared
  std::uint64_t statements_cleared_ = 0;  // how many times they were (pipeline)
  PgWatchdog::Clock clock_;
  std::shared_ptr<PgWatchdog> watchdog_;
};

}  // namespace chat::store::postgres
