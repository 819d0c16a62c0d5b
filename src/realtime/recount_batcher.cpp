#include "realtime/recount_batcher.hpp"

#include <algorithm>
#include <map>
#include <memory>

namespace chat::realtime {

std::chrono::milliseconds RecountBatcher::retry_delay(int failures) {
  constexpr std::chrono::milliseconds kFirst{1000};
  constexpr std::chrono::milliseconds kLongest{30000};
  if (failures <= 1) return kFirst;
  if (failures > 6) return kLongest;  // 1 s doubled five times is already past it
  return std::min(kLongest, kFirst * (1 << (failures - 1)));
}

void RecountBatcher::ask(std::int64_t chat_id, std::int64_t user_id, Done done, int failures) {
  {
    std::lock_guard lock(mutex_);
    waiting_[user_id].push_back(Asker{chat_id, std::move(done), failures});
    if (posted_) return;
    posted_ = true;
  }
  post_([this] { read_waiting(); });
}

void RecountBatcher::read_waiting() {
  std::unordered_map<std::int64_t, std::vector<Asker>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(waiting_);
    posted_ = false;
  }
  for (auto& [user_id, asked] : batch) {
    // By chat, so that each chat is read once however many sockets of the user asked.
    std::stable_sort(asked.begin(), asked.end(),
                     [](const Asker& a, const Asker& b) { return a.chat_id < b.chat_id; });
    std::size_t from = 0;
    while (from < asked.size()) {
      std::vector<std::int64_t> chats;
      auto askers = std::make_shared<std::vector<Asker>>();
      for (; from < asked.size(); ++from) {
        const std::int64_t chat_id = asked[from].chat_id;
        if (chats.empty() || chats.back() != chat_id) {
          if (chats.size() == kChatsPerRead) break;
          chats.push_back(chat_id);
        }
        askers->push_back(std::move(asked[from]));
      }
      read_(user_id, chats,
            [this, user_id = user_id, chats,
             askers](const std::optional<store::UnreadCounts>& counts) {
              answer(user_id, chats, *askers, counts);
            });
    }
  }
}

void RecountBatcher::answer(std::int64_t user_id, const std::vector<std::int64_t>& chats,
                            std::vector<Asker>& askers,
                            const std::optional<store::UnreadCounts>& counts) {
  if (counts && counts->counts.size() == chats.size()) {
    for (auto& asker : askers) {
      const auto at = std::lower_bound(chats.begin(), chats.end(), asker.chat_id) - chats.begin();
      asker.done(store::UnreadCount{counts->counts[static_cast<std::size_t>(at)], counts->seq});
    }
    return;
  }
  // The store failed: each asker is told so, and those that still want the count and have
  // reads left are asked again after their delay, together with the others of the same
  // number of failures (an asker asked later, joined to this read, does not make them
  // wait less).
  std::map<int, std::vector<Asker>> again;
  for (auto& asker : askers) {
    ++asker.failures;
    if (asker.done(std::nullopt) && asker.failures < kAttempts) {
      again[asker.failures].push_back(std::move(asker));
    }
  }
  for (auto& [failures, group] : again) {
    auto retried = std::make_shared<std::vector<Asker>>(std::move(group));
    later_(retry_delay(failures), [this, user_id, retried] {
      for (auto& asker : *retried) {
        ask(asker.chat_id, user_id, std::move(asker.done), asker.failures);
      }
    });
  }
}

}  // namespace chat::realtime
