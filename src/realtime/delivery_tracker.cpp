#include "realtime/delivery_tracker.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "chat/wire.hpp"
#include "store/store.hpp"

namespace chat::realtime {

void DeliveryTracker::note(std::int64_t user_id, std::int64_t chat_id, std::int64_t message_id) {
  std::lock_guard lock(mutex_);
  auto& v = pending_[{chat_id, user_id}];
  v = std::max(v, message_id);
}

boost::asio::awaitable<void> DeliveryTracker::flush() {
  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(pending_);
  }
  for (const auto& [key, message_id] : batch) {
    auto events = [](const store::WatermarkChange& c) {
      return std::vector<store::NewEvent>{chats::to_event(c.chat_id, chats::delivered_event(c.chat_id, c.user_id, c.value))};
    };
    co_await store_.chats().mark_delivered(key.first, key.second, message_id, std::move(events));
  }
}

boost::asio::awaitable<void> DeliveryTracker::run(std::chrono::milliseconds interval) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  for (;;) {
    timer.expires_after(interval);
    co_await timer.async_wait(boost::asio::use_awaitable);
    try {
      co_await flush();
    } catch (const std::exception& e) {
      spdlog::warn("delivered watermarks not written: {}", e.what());
    }
  }
}

}  // namespace chat::realtime
