#include "store/postgres/pg_pool.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "store/store.hpp"

namespace chat::store::postgres {

namespace asio = boost::asio;

// A coroutine waiting for a connection: its timer is cancelled when one is handed over.
struct PgPool::Waiter {
  explicit Waiter(const asio::any_io_executor& ex)
      : timer(ex, asio::steady_timer::time_point::max()) {}
  asio::steady_timer timer;
  std::unique_ptr<PgConnection> handed;
  bool may_open = false;  // a slot freed up: open a new connection
};

std::shared_ptr<PgPool> PgPool::create(asio::any_io_executor executor, std::string conninfo,
                                       std::size_t max) {
  return std::shared_ptr<PgPool>(new PgPool(std::move(executor), std::move(conninfo), max));
}

PgPool::PgPool(asio::any_io_executor executor, std::string conninfo, std::size_t max)
    : executor_(std::move(executor)), conninfo_(std::move(conninfo)), max_(max) {}

std::size_t PgPool::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

PgPool::Lease::~Lease() {
  if (pool_ && conn_) pool_->give_back(std::move(conn_));
}

void PgPool::give_back(std::unique_ptr<PgConnection> conn) {
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    if (!waiters_.empty()) {
      waiter = waiters_.front();
      waiters_.pop_front();
    }
    if (!conn->healthy()) {
      conn.reset();
      if (!waiter) {
        --open_;
        return;
      }
      waiter->may_open = true;  // the slot passes to the waiter
    } else if (!waiter) {
      idle_.push_back(std::move(conn));
      return;
    } else {
      waiter->handed = std::move(conn);
    }
  }
  asio::post(waiter->timer.get_executor(), [waiter] { waiter->timer.cancel(); });
}

asio::awaitable<PgPool::Lease> PgPool::acquire() {
  auto self = shared_from_this();
  auto ex = co_await asio::this_coro::executor;
  bool open_new = false;
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    while (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      if (conn->still_alive()) co_return Lease(self, std::move(conn));
      --open_;
    }
    if (open_ < max_) {
      ++open_;
      open_new = true;
    } else {
      waiter = std::make_shared<Waiter>(ex);
      waiters_.push_back(waiter);
    }
  }
  if (waiter) {
    boost::system::error_code ec;
    co_await waiter->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (waiter->handed) co_return Lease(self, std::move(waiter->handed));
    open_new = waiter->may_open;
  }
  if (!open_new) throw Unavailable("postgres: no connection available");
  try {
    auto conn = co_await PgConnection::connect(executor_, conninfo_);
    co_return Lease(self, std::move(conn));
  } catch (...) {
    std::lock_guard lock(mutex_);
    --open_;
    throw;
  }
}

}  // namespace chat::store::postgres
