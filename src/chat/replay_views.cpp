#include "chat/replay_views.hpp"

#include <algorithm>

#include "store/chat_store.hpp"

namespace chat::chats {

boost::asio::awaitable<std::vector<store::MemberView>> replay_views(
    store::ChatStore& chats, std::int64_t viewer, const std::vector<store::EventRecord>& events) {
  std::vector<std::int64_t> ids;
  for (const auto& e : events) {
    if (e.type != "chat_created" && e.type != "chat_updated") continue;
    if (std::find(ids.begin(), ids.end(), e.chat_id) == ids.end()) ids.push_back(e.chat_id);
  }
  if (ids.empty()) co_return std::vector<store::MemberView>{};
  co_return co_await chats.member_views(viewer, std::move(ids));
}

}  // namespace chat::chats
