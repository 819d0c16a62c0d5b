#include "realtime/recount_batcher.hpp"

#include <algorithm>
#include <memory>

namespace chat::realtime {

void RecountBatcher::ask(std::int64_t chat_id, std::int64_t user_id, Done done) {
  {
    std::lock_guard lock(mutex_);
    waiting_[user_id].emplace_back(chat_id, std::move(done));
    if (posted_) return;
    posted_ = true;
  }
  post_([this] { read_waiting(); });
}

void RecountBatcher::read_waiting() {
  std::unordered_map<std::int64_t, std::vector<std::pair<std::int64_t, Done>>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(waiting_);
    posted_ = false;
  }
  for (auto& [user_id, asked] : batch) {
    // By chat, so that each chat is read once however many sockets of the user asked.
    std::stable_sort(asked.begin(), asked.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::size_t from = 0;
    while (from < asked.size()) {
      std::vector<std::int64_t> chats;
      auto waiters = std::make_shared<std::vector<std::pair<std::int64_t, Done>>>();
      for (; from < asked.size(); ++from) {
        const std::int64_t chat_id = asked[from].first;
        if (chats.empty() || chats.back() != chat_id) {
          if (chats.size() == kChatsPerRead) break;
          chats.push_back(chat_id);
        }
        waiters->push_back(std::move(asked[from]));
      }
      read_(user_id, chats, [chats, waiters](const std::optional<store::UnreadCounts>& counts) {
        for (auto& [chat_id, done] : *waiters) {
          if (!counts || counts->counts.size() != chats.size()) {
            done(std::nullopt);
            continue;
          }
          const auto at = std::lower_bound(chats.begin(), chats.end(), chat_id) - chats.begin();
          done(store::UnreadCount{counts->counts[static_cast<std::size_t>(at)], counts->seq});
        }
      });
    }
  }
}

}  // namespace chat::realtime
