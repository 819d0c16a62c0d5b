#include "chat/replay_views.hpp"

#include <algorithm>

#include "store/chat_store.hpp"

namespace chat::chats {

boost::asio::awaitable<std::vector<store::ChatSummary>> replay_views(
    store::ChatStore& chats, std::int64_t viewer, const std::vector<store::EventRecord>& events) {
  std::vector<std::int64_t> ids;
  for (const auto& e : events) {
    if (e.type != "chat_created" && e.type != "chat_updated") continue;
    if (std::find(ids.begin(), ids.end(), e.chat_id) == ids.end()) ids.push_back(e.chat_id);
  }
  std::vector<store::ChatSummary> out;
  out.reserve(ids.size());
  for (const std::int64_t id : ids) {
    auto view = co_await chats.summary(id, viewer);
    if (view) out.push_back(std::move(*view));
  }
  co_return out;
}

}  // namespace chat::chats
