#include "realtime/delivery_tracker.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <map>
#include <vector>

#include "chat/wire.hpp"
#include "store/store.hpp"

namespace chat::realtime {

void DeliveryTracker::note(std::int64_t chat_id, std::int64_t message_id,
                           const std::vector<std::int64_t>& users) {
  std::lock_guard lock(mutex_);
  auto& chat = pending_[chat_id];
  for (const std::int64_t user : users) {
    auto& v = chat[user];
    v = std::max(v, message_id);
  }
}

void DeliveryTracker::requeue(std::int64_t chat_id, const Watermarks& users) {
  std::lock_guard lock(mutex_);
  auto& chat = pending_[chat_id];
  for (const auto& [user, message_id] : users) {
    auto& v = chat[user];
    v = std::max(v, message_id);
  }
}

boost::asio::awaitable<std::size_t> DeliveryTracker::flush() {
  std::unordered_map<std::int64_t, Watermarks> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(pending_);
  }
  // One transaction per chat for all its members noted since the last flush.
  std::map<std::int64_t, std::vector<std::pair<std::int64_t, std::int64_t>>> by_chat;
  for (const auto& [chat_id, users] : batch) {
    auto& values = by_chat[chat_id];
    values.assign(users.begin(), users.end());
    std::sort(values.begin(), values.end());
  }
  std::size_t unwritten = 0;
  for (auto& [chat_id, values] : by_chat) {
    auto events = [](const store::DeliveredBatch& b) {
      std::vector<store::NewEvent> out;
      if (b.member_count <= kEachMemberUpTo) {
        for (const auto& c : b.changes) {
          out.push_back(
              chats::to_event(c.chat_id, chats::delivered_event(c.chat_id, c.user_id, c.value)));
        }
      } else if (b.lowest_after > b.lowest_before) {
        const auto& last =
            *std::min_element(b.changes.begin(), b.changes.end(),
                              [](const auto& x, const auto& y) { return x.value < y.value; });
        out.push_back(chats::to_event(b.chat_id,
                                      chats::delivered_event(b.chat_id, last.user_id, last.value)));
      }
      return out;
    };
    bool written = false;
    try {
      co_await store_.chats().mark_delivered_many(chat_id, std::move(values), std::move(events));
      written = true;
    } catch (const store::Unavailable& e) {
      // The database is away: the receipts wait for the next flush rather than being lost
      // (a watermark only rises, so writing one again, or late, is harmless).
      if (unwritten++ == 0) last_failure_ = e.what();
    }
    if (!written) requeue(chat_id, batch[chat_id]);  // the batch still holds them
  }
  co_return unwritten;
}

boost::asio::awaitable<void> DeliveryTracker::run(std::chrono::milliseconds interval) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  bool failing = false;  // one warning per outage, not one per flush
  for (;;) {
    timer.expires_after(interval);
    co_await timer.async_wait(boost::asio::use_awaitable);
    try {
      const std::size_t unwritten = co_await flush();
      if (unwritten > 0 && !failing) {
        spdlog::warn("delivered watermarks of {} chat(s) not written yet, retrying: {}", unwritten,
                     last_failure_);
      } else if (unwritten == 0 && failing) {
        spdlog::info("delivered watermarks written again");
      }
      failing = unwritten > 0;
    } catch (const std::exception& e) {
      spdlog::warn("delivered watermarks not written: {}", e.what());
    }
  }
}

}  // namespace chat::realtime
