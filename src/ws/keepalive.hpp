// Keeps a node's sockets alive and finds the dead ones from one timer: every tick it asks
// each socket whether a ping is due or the peer has been silent too long. One timer for
// the node instead of one per socket: an idle socket costs no timer, and a sweep of tens
// of thousands of sockets takes well under a millisecond.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

namespace chat::ws {

class KeepAlive {
 public:
  using Clock = std::chrono::steady_clock;

  class Watched {
   public:
    virtual ~Watched() = default;
    // Pings or drops the connection as its silence requires; false once the socket is
    // done with (the sweep forgets it). Any thread.
    virtual bool keepalive(Clock::time_point now) = 0;
  };

  // Ticks often enough that a ping goes out within a quarter of the idle timeout of being
  // due (and at least every second).
  explicit KeepAlive(std::chrono::seconds idle_timeout);

  // Thread-safe. Held weakly: a socket that ends is forgotten at the next tick.
  void watch(const std::shared_ptr<Watched>& socket);
  // Runs until the I/O context stops.
  boost::asio::awaitable<void> run();
  // One sweep (run() calls it every tick; tests call it directly).
  void sweep(Clock::time_point now);
  [[nodiscard]] std::size_t watched() const;

 private:
  Clock::duration tick_;
  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<Watched>> sockets_;
};

}  // namespace chat::ws
