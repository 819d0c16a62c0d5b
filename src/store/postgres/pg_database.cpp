#include "store/postgres/pg_database.hpp"

#include <exception>

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
  // 55P03: a lock timeout (the event-log lock held by a node that stopped answering).
  return s.starts_with("08") || s.starts_with("57P") || s.starts_with("53") || s == "25006" ||
         s == "55P03";
}

bool is_retryable(const PgError& e) {
  return e.sqlstate() == "40P01" || e.sqlstate() == "40001";
}

asio::awaitable<PgResult> PgDatabase::query(const char* sql, PgParams params) {
  auto lease = co_await pool_->acquire();
  std::exception_ptr failure;
  try {
    co_return co_await lease->prepared(sql, std::move(params));
  } catch (const PgError& e) {
    if (!is_unavailability(e)) throw;
    failure = std::current_exception();
  }
  (void)failure;
  throw Unavailable("postgres: the database is not available");
}

asio::awaitable<void> PgDatabase::transaction(Body body, const char* begin) {
  for (int attempt = 1;; ++attempt) {
    auto lease = co_await pool_->acquire();
    std::exception_ptr failure;
    bool retry = false;
    try {
      co_await lease->query(begin);
      co_await body(*lease);
      co_await lease->query("COMMIT");
      co_return;
    } catch (const PgError& e) {
      retry = is_retryable(e) && attempt < 4;
      failure =
          is_unavailability(e)
              ? std::make_exception_ptr(Unavailable("postgres: the database is not available"))
              : std::current_exception();
    } catch (...) {
      failure = std::current_exception();
    }
    if (lease->healthy()) {
      try {
        co_await lease->query("ROLLBACK");
      } catch (const std::exception&) {
        // The connection is dropped by the pool when it is broken; nothing else to undo.
      }
    }
    if (!retry) std::rethrow_exception(failure);
  }
}

}  // namespace chat::store::postgres
