#include "store/postgres/pg_watchdog.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>

namespace chat::store::postgres {

PgWatchdog::PgWatchdog(std::chrono::seconds timeout)
    : timeout_(timeout), thread_([this] { run(); }) {}

PgWatchdog::~PgWatchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void PgWatchdog::add(Clock* clock) {
  std::lock_guard lock(mutex_);
  clocks_.insert(clock);
}

void PgWatchdog::remove(Clock* clock) {
  std::lock_guard lock(mutex_);
  clocks_.erase(clock);
}

std::int64_t PgWatchdog::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void PgWatchdog::run() {
  // A stall is noticed within a quarter of the timeout (at most a second) past it.
  const auto period =
      std::min<std::chrono::steady_clock::duration>(std::chrono::seconds(1), timeout_ / 4);
  const auto limit = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout_).count();
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, period, [this] { return stopping_; })) {
    const auto now = now_ns();
    for (Clock* c : clocks_) {
      const auto since = c->waiting_since.load(std::memory_order_relaxed);
      if (since == 0 || now - since < limit || c->given_up.exchange(true)) continue;
      // Under the lock, so the connection cannot close the descriptor meanwhile (remove()).
      ::shutdown(c->fd, SHUT_RDWR);
    }
  }
}

}  // namespace chat::store::postgres
