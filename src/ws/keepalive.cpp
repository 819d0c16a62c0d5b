#include "ws/keepalive.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace chat::ws {

KeepAlive::KeepAlive(std::chrono::seconds idle_timeout)
    : tick_(std::clamp<Clock::duration>(idle_timeout / 4, std::chrono::milliseconds(50),
                                        std::chrono::seconds(1))) {}

void KeepAlive::watch(const std::shared_ptr<Watched>& socket) {
  std::lock_guard lock(mutex_);
  sockets_.push_back(socket);
}

std::size_t KeepAlive::watched() const {
  std::lock_guard lock(mutex_);
  return sockets_.size();
}

void KeepAlive::sweep(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  std::erase_if(sockets_, [now](const std::weak_ptr<Watched>& w) {
    auto socket = w.lock();
    return !socket || !socket->keepalive(now);
  });
}

boost::asio::awaitable<void> KeepAlive::run() {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  for (;;) {
    timer.expires_after(tick_);
    co_await timer.async_wait(boost::asio::use_awaitable);
    sweep(Clock::now());
  }
}

}  // namespace chat::ws
