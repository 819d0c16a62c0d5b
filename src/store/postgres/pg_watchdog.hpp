// Gives up on PostgreSQL connections whose server has gone silent. A server that hangs (a
// frozen host, stalled storage) closes nothing and its kernel keeps TCP alive, and libpq
// has no timeout of its own in nonblocking mode, so a statement would wait for as long as
// the server hangs. One thread looks at every registered connection a few times per
// timeout and shuts down the socket of one that has waited longer than the timeout, which
// wakes its wait; the connection then throws store::Unavailable and counts as broken.
// (A timer per wait did the same at about 10 % more of chatd's CPU per message.)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace chat::store::postgres {

class PgWatchdog {
 public:
  // One connection's stall clock: it lives in the connection, registered for its life.
  struct Clock {
    int fd = -1;
    std::atomic<std::int64_t> waiting_since{0};  // steady clock, ns; 0 while not waiting
    std::atomic<bool> given_up{false};
  };

  explicit PgWatchdog(std::chrono::seconds timeout);
  ~PgWatchdog();
  PgWatchdog(const PgWatchdog&) = delete;
  PgWatchdog& operator=(const PgWatchdog&) = delete;

  [[nodiscard]] std::chrono::seconds timeout() const { return timeout_; }
  // Any thread. `clock` must stay valid until remove() returns; remove it before its
  // socket is closed.
  void add(Clock* clock);
  void remove(Clock* clock);

  static std::int64_t now_ns();

 private:
  void run();

  std::chrono::seconds timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::unordered_set<Clock*> clocks_;
  std::thread thread_;
};

}  // namespace chat::store::postgres
