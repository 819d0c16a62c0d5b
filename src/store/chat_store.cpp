#include "store/chat_store.hpp"

#include <utility>

namespace chat::store {

boost::asio::awaitable<UnreadCount> ChatStore::unread_count(std::int64_t chat_id,
                                                            std::int64_t viewer_id) {
  std::vector<std::int64_t> one(1, chat_id);  // (a braced list inside co_await trips g++ 12)
  auto both = co_await unread_counts(viewer_id, std::move(one));
  co_return UnreadCount{both.counts.at(0), both.seq};
}

}  // namespace chat::store
