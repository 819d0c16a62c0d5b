#include "realtime/delivery_tracker.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
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
  // One transaction for every member of every chat noted since the last flush.
  store::DeliveredNotes notes;
  for (const auto& [chat_id, users] : batch) {
    auto& values = notes[chat_id];
    values.assign(users.begin(), users.end());
    std::sort(values.begin(), values.end());
  }
  std::size_t unwritten = 0;
  if (!notes.empty()) {
    try {
      store::EventsFor<store::DeliveredBatch> events = chats::delivered_events;
      co_await store_.chats().mark_delivered_many(std::move(notes), std::move(events));
    } catch (const std::exception& e) {
      // The database is away (or refused the batch): the receipts wait for the next flush
      // rather than being lost (a watermark only rises, so writing one again, or late, is
      // harmless).
      last_failure_ = e.what();
      unwritten = batch.size();
      for (const auto& [chat_id, users] : batch) requeue(chat_id, users);
    }
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
