// A bounded pool of PostgreSQL connections. A coroutine borrows one for a unit of work and
// gives it back when the lease ends; when all are busy it waits (no thread blocks). Broken
// connections are dropped and replaced on demand. Thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/postgres/pg_connection.hpp"

namespace chat::store::postgres {

class PgPool : public std::enable_shared_from_this<PgPool> {
 public:
  class Lease {
   public:
    Lease(std::shared_ptr<PgPool> pool, std::unique_ptr<PgConnection> conn)
        : pool_(std::move(pool)), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = default;
    ~Lease();
    PgConnection& operator*() { return *conn_; }
    PgConnection* operator->() { return conn_.get(); }

   private:
    std::shared_ptr<PgPool> pool_;
    std::unique_ptr<PgConnection> conn_;
  };

  // A statement the server leaves unanswered for `reply_timeout` fails (PgWatchdog);
  // zero: no limit.
  static std::shared_ptr<PgPool> create(
      boost::asio::any_io_executor executor, std::string conninfo, std::size_t max_connections,
      std::chrono::seconds reply_timeout = std::chrono::seconds(30));

  boost::asio::awaitable<Lease> acquire();
  [[nodiscard]] std::size_t open_connections() const;

 private:
  struct Waiter;
  PgPool(boost::asio::any_io_executor executor, std::string conninfo, std::size_t max_connections,
         std::chrono::seconds reply_timeout);
  void give_back(std::unique_ptr<PgConnection> conn);
  // After a failed connect: frees its slot, and fails every queued acquire when no other
  // connection is lent out or opening.
  void fail_waiters();

  boost::asio::any_io_executor executor_;
  std::string conninfo_;
  std::size_t max_;
  std::shared_ptr<PgWatchdog> watchdog_;  // shared with the connections it watches
  std::shared_ptr<std::atomic<std::uint64_t>> plan_epoch_ =
      std::make_shared<std::atomic<std::uint64_t>>(0);  // PgConnection::share_plan_epoch
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  std::size_t open_ = 0;  // idle + lent + being opened
  std::deque<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace chat::store::postgres
