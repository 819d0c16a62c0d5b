#include "store/postgres/pg_pool.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>

#include "store/store.hpp"

namespace chat::store::postgres {

namespace asio = boost::asio;

// A coroutine waiting for a connection. give_back() fills it in under the pool's mutex and
// resumes the coroutine through its stored completion handler: no timer shared between
// threads, and no wake-up lost if the connection comes back before the coroutine sleeps.
struct PgPool::Waiter {
  std::unique_ptr<PgConnection> handed;
  bool may_open = false;       // a slot freed up: open a new connection
  bool failed = false;         // a connect failed meanwhile: the database takes none now
  bool signalled = false;      // handed, may_open or failed is set
  std::function<void()> wake;  // set while the coroutine sleeps; resumes it on its executor
};

std::shared_ptr<PgPool> PgPool::create(asio::any_io_executor executor, std::string conninfo,
                                       std::size_t max, std::chrono::seconds reply_timeout) {
  return std::shared_ptr<PgPool>(
      new PgPool(std::move(executor), std::move(conninfo), max, reply_timeout));
}

PgPool::PgPool(asio::any_io_executor executor, std::string conninfo, std::size_t max,
               std::chrono::seconds reply_timeout)
    : executor_(std::move(executor)),
      conninfo_(std::move(conninfo)),
      max_(max),
      watchdog_(reply_timeout.count() > 0 ? std::make_shared<PgWatchdog>(reply_timeout) : nullptr) {
}

std::size_t PgPool::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

PgPool::Lease::~Lease() {
  if (pool_ && conn_) pool_->give_back(std::move(conn_));
}

void PgPool::give_back(std::unique_ptr<PgConnection> conn) {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    std::shared_ptr<Waiter> waiter;
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
    waiter->signalled = true;
    wake = std::move(waiter->wake);
  }
  if (wake) wake();
}

asio::awaitable<PgPool::Lease> PgPool::acquire() {
  auto self = shared_from_this();
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
      waiter = std::make_shared<Waiter>();
      waiters_.push_back(waiter);
    }
  }
  if (waiter) {
    auto sleep = [this, waiter](auto handler) {
      // Posted, never run inline: the pool's mutex may be held by the caller of wake().
      auto ex = asio::get_associated_executor(handler);
      auto h = std::make_shared<decltype(handler)>(std::move(handler));
      std::function<void()> wake = [ex, h] { asio::post(ex, [h] { std::move (*h)(); }); };
      std::unique_lock lock(mutex_);
      if (waiter->signalled) {
        lock.unlock();
        wake();
        return;
      }
      waiter->wake = std::move(wake);
    };
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(std::move(sleep),
                                                                          asio::use_awaitable);
    std::lock_guard lock(mutex_);
    if (waiter->handed) co_return Lease(self, std::move(waiter->handed));
    if (waiter->failed) throw Unavailable("postgres: the database takes no connection");
    open_new = waiter->may_open;
  }
  if (!open_new) throw Unavailable("postgres: no connection available");
  try {
    auto conn = co_await PgConnection::connect(executor_, conninfo_);
    conn->watch(watchdog_);
    conn->share_plan_epoch(plan_epoch_);
    co_return Lease(self, std::move(conn));
  } catch (...) {
    fail_waiters();
    throw;
  }
}

void PgPool::fail_waiters() {
  // The slot is free again. While other connections are lent out (or opening), those
  // queued wait for them: one that comes back healthy serves the next waiter, a broken one
  // passes its slot on. Once none is left, nothing would ever wake them (a connect like
  // this one failing for each slot passed on): they fail now, as the database takes no
  // connection. Before, they slept until a later request gave back a healthy connection,
  // however long after an outage.
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard lock(mutex_);
    --open_;
    if (open_ > 0) return;
    for (auto& waiter : waiters_) {
      waiter->failed = true;
      waiter->signalled = true;
      if (waiter->wake) wakes.push_back(std::move(waiter->wake));
    }
    waiters_.clear();
  }
  for (auto& wake : wakes) wake();
}

}  // namespace chat::store::postgres
