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
    // Each chat once, however many sockets of the user asked about it.
    std::vector<std::int64_t> chats;
    chats.reserve(asked.size());
    for (const auto& [chat_id, done] : asked) chats.push_back(chat_id);
    std::sort(chats.begin(), chats.end());
    chats.erase(std::unique(chats.begin(), chats.end()), chats.end());
    auto waiters = std::make_shared<std::vector<std::pair<std::int64_t, Done>>>(std::move(asked));
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

}  // namespace chat::realtime
