// The PostgreSQL side of a store call: borrow a pooled connection, run one statement or a
// transaction on it, give it back. Transactions that lose a deadlock or a serialization
// race are run again; a lost server becomes store::Unavailable (503), never a crash.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "store/postgres/pg_connection.hpp"
#include "store/store.hpp"

namespace chat::store::postgres {

class PgPool;

// Parameters as libpq's text format.
inline std::optional<std::string> pg_param(std::int64_t v) {
  return std::to_string(v);
}
inline std::optional<std::string> pg_param(int v) {
  return std::to_string(v);
}
inline std::optional<std::string> pg_param(bool v) {
  return std::string(v ? "t" : "f");
}
inline std::optional<std::string> pg_param(std::string v) {
  return v;
}
inline std::optional<std::string> pg_param(const char* v) {
  return std::string(v);
}
inline std::optional<std::string> pg_param(std::optional<std::int64_t> v) {
  return v ? std::optional<std::string>(std::to_string(*v)) : std::nullopt;
}
inline std::optional<std::string> pg_param(std::optional<bool> v) {
  return v ? pg_param(*v) : std::nullopt;
}
inline std::optional<std::string> pg_param(std::optional<std::string> v) {
  return v;
}

template <class... A>
PgParams pg_params(A&&... args) {
  PgParams p;
  p.reserve(sizeof...(A));
  (p.push_back(pg_param(std::forward<A>(args))), ...);
  return p;
}

std::optional<std::int64_t> optional_int64(const PgResult& r, int row, int col);

class PgDatabase {
 public:
  explicit PgDatabase(std::shared_ptr<PgPool> pool) : pool_(std::move(pool)) {}

  // One prepared statement in its own implicit transaction (run again, prepared anew, when
  // a migration changed what it returns).
  boost::asio::awaitable<PgResult> query(const char* sql, PgParams params = {});

  // Independent statements in one round trip on one connection, with no BEGIN of ours
  // (PostgreSQL runs what comes before the pipeline's one Sync as an implicit transaction).
  boost::asio::awaitable<std::vector<PgResult>> pipeline(std::vector<PgStatement> statements);

  // Runs `body` between BEGIN (or `begin`) and COMMIT on one connection; rolls back when it
  // throws. Run up to three times more when is_retryable(), so `body` must start from
  // scratch each time (reset what it fills in).
  using Body = std::function<boost::asio::awaitable<void>(PgConnection&)>;
  boost::asio::awaitable<void> transaction(Body body, const char* begin = "BEGIN");

  [[nodiscard]] PgPool& pool() { return *pool_; }

 private:
  std::shared_ptr<PgPool> pool_;
};

// One try of a transaction: BEGIN (or `begin`), the body, COMMIT; rolled back when it
// failed. The caller decides about running it again.
struct TransactionAttempt {
  bool committed = false;
  bool commit_sent = false;  // a failure after this may have committed (no answer came)
  bool retryable = false;    // deadlock, serialization failure or a stale plan
  std::exception_ptr failure;
};
// How many times a transaction is tried while it fails retryably.
constexpr int kTransactionAttempts = 4;
// A conflict (deadlock, serialization failure) that lasted every attempt: a database too
// busy to let the write through just now, not a bad request (503). A batch of sends that
// meets it writes each send on its own, as after any failure of the batch's own.
class Contended : public Unavailable {
 public:
  using Unavailable::Unavailable;
};
// After the last attempt (or a failure not worth another): throws what the attempt failed
// with, or Contended.
[[noreturn]] void give_up(const TransactionAttempt& attempt);
boost::asio::awaitable<TransactionAttempt> attempt_transaction(PgConnection& conn,
                                                               const char* begin,
                                                               const PgDatabase::Body& body);
// The same with the caller's own first and last steps: `open` must start the transaction
// (it may read something in the same round trip) and `close` must end it with COMMIT (it
// may write something first, in the same round trip).
boost::asio::awaitable<TransactionAttempt> attempt_transaction(PgConnection& conn,
                                                               const PgDatabase::Body& open,
                                                               const PgDatabase::Body& body,
                                                               const PgDatabase::Body& close);

// True for errors that mean "the server is not there right now" rather than a bad query:
// connection failures, shutdown in progress, too many connections, a statement cancelled
// (statement_timeout, pg_cancel_backend).
bool is_unavailability(const PgError& e);
// Deadlock, serialization failure or a stale plan (PgError::stale_plan): the transaction
// may simply be run again.
bool is_retryable(const PgError& e);

}  // namespace chat::store::postgres
