#include "store/postgres/pg_database.hpp"

#include <exception>

#include "metrics/metrics.hpp"
#include "store/postgres/pg_pool.hpp"
#include "store/store.hpp"

namespace chat::store::postgres {

namespace asio = boost::asio;

std::optional<std::int64_t> optional_int64(const PgResult& r, int row, int col) {
  if (r.is_null(row, col)) return std::nullopt;
  return r.int64(row, col);
}

bool is_unavailability(const PgError& e) {
  const auto& s = e.sqlstate();
  // 57: operator intervention (a shutdown, a cancelled statement: 57014). 55P03: a lock
  // timeout (the event-log lock held by a node that stopped answering).
  return s.starts_with("08") || s.starts_with("57") || s.starts_with("53") || s == "25006" ||
         s == "55P03";
}

void give_up(const TransactionAttempt& attempt) {
  if (attempt.retryable) throw Contended("postgres: the write kept conflicting with others");
  std::rethrow_exception(attempt.failure);
}

bool is_retryable(const PgError& e) {
  return e.sqlstate() == "40P01" || e.sqlstate() == "40001" || e.stale_plan();
}

namespace {

const char* retry_reason(const PgError& e) {
  if (e.sqlstate() == "40P01") return "deadlock";
  if (e.sqlstate() == "40001") return "serialization";
  return "stale_plan";
}

// Runs `run` (a statement or a pipeline on `conn`) once more when its plan went stale, the
// statements prepared anew (PgConnection::prepare); a server not there is Unavailable.
template <class Run>
auto once_more_if_stale(PgConnection& conn, Run run) -> decltype(run(conn)) {
  for (int attempt = 1;; ++attempt) {
    try {
      co_return co_await run(conn);
    } catch (const PgError& e) {
      if (is_unavailability(e)) break;
      if (!e.stale_plan() || attempt >= 2) throw;
    }
  }
  throw Unavailable("postgres: the database is not available");
}

}  // namespace

// The parameters are kept for a second run.
asio::awaitable<PgResult> PgDatabase::query(const char* sql, PgParams params) {
  auto lease = co_await pool_->acquire();
  const auto run = [&](PgConnection& c) { return c.prepared(sql, params); };
  co_return co_await once_more_if_stale(*lease, run);
}

asio::awaitable<std::vector<PgResult>> PgDatabase::pipeline(std::vector<PgStatement> statements) {
  auto lease = co_await pool_->acquire();
  const auto run = [&](PgConnection& c) { return c.pipeline(statements); };
  co_return co_await once_more_if_stale(*lease, run);
}

asio::awaitable<TransactionAttempt> attempt_transaction(PgConnection& conn, const char* begin,
                                                        const PgDatabase::Body& body) {
  const PgDatabase::Body open = [begin](PgConnection& c) -> asio::awaitable<void> {
    co_await c.query(begin);
  };
  const PgDatabase::Body close = [](PgConnection& c) -> asio::awaitable<void> {
    co_await c.query("COMMIT");
  };
  co_return co_await attempt_transaction(conn, open, body, close);
}

asio::awaitable<TransactionAttempt> attempt_transaction(PgConnection& conn,
                                                        const PgDatabase::Body& open,
                                                        const PgDatabase::Body& body,
                                                        const PgDatabase::Body& close) {
  TransactionAttempt out;
  try {
    co_await open(conn);
    co_await body(conn);
    out.commit_sent = true;
    co_await close(conn);
    out.committed = true;
    co_return out;
  } catch (const PgError& e) {
    out.retryable = is_retryable(e);
    if (out.retryable) metrics::metrics().db_retries.with({retry_reason(e)}).inc();
    out.failure =
        is_unavailability(e)
            ? std::make_exception_ptr(Unavailable("postgres: the database is not available"))
            : std::current_exception();
  } catch (...) {
    out.failure = std::current_exception();
  }
  if (conn.healthy()) {
    try {
      co_await conn.query("ROLLBACK");
    } catch (const std::exception&) {
      // The pool drops a broken connection; the server rolled back already.
    }
  }
  co_return out;
}

asio::awaitable<void> PgDatabase::transaction(Body body, const char* begin) {
  for (int attempt = 1;; ++attempt) {
    auto lease = co_await pool_->acquire();
    auto result = co_await attempt_transaction(*lease, begin, body);
    if (result.committed) co_return;
    if (!result.retryable || attempt >= kTransactionAttempts) give_up(result);
  }
}

}  // namespace chat::store::postgres
