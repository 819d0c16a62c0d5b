#include "store/chat_store.hpp"

#include <algorithm>
#include <utility>

namespace chat::store {

bool still_removable(const std::vector<MemberRecord>& members, std::int64_t user_id,
                     const RemovalBy& by) {
  // A member with this id and, when given, this role.
  auto has = [&](std::int64_t who, std::optional<Role> role) {
    return std::any_of(members.begin(), members.end(), [&](const MemberRecord& m) {
      return m.user_id == who && (!role || m.role == *role);
    });
  };
  return has(by.actor.user_id, by.actor.role) && has(user_id, by.target_role);
}

boost::asio::awaitable<UnreadCount> ChatStore::unread_count(std::int64_t chat_id,
                                                            std::int64_t viewer_id) {
  std::vector<std::int64_t> one(1, chat_id);  // (a braced list inside co_await trips g++ 12)
  auto both = co_await unread_counts(viewer_id, std::move(one));
  co_return UnreadCount{both.counts.at(0), both.seq};
}

}  // namespace chat::store
