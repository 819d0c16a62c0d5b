#include "realtime/presence.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "realtime/broker.hpp"
#include "store/store.hpp"

namespace chat::realtime {

boost::asio::awaitable<void> PresenceAnnouncer::went_offline(std::int64_t user_id) {
  const Micros now = now_micros();
  std::vector<std::int64_t> ids{user_id};
  co_await store_.users().set_last_seen(std::move(ids), now);
  auto chat_ids = co_await store_.chats().chat_ids_of(user_id);
  Audience audience{std::move(chat_ids), now};
  co_await announce(user_id, false, std::move(audience));
}

boost::asio::awaitable<void> PresenceAnnouncer::record_seen(std::vector<std::int64_t> user_ids,
                                                            Micros when) {
  if (user_ids.empty()) co_return;
  co_await store_.users().set_last_seen(std::move(user_ids), when);
}

boost::asio::awaitable<void> PresenceAnnouncer::announce(std::int64_t user_id, bool online,
                                                         std::optional<Audience> known) {
  if (!known) {
    known.emplace();
    known->chat_ids = co_await store_.chats().chat_ids_of(user_id);
    auto user = co_await store_.users().find_by_id(user_id);
    if (user) known->last_seen = user->last_seen;
  }
  Ephemeral e;
  e.chat_ids = std::move(known->chat_ids);
  e.exclude_user_id = user_id;
  boost::json::object o{{"type", "user_status"}, {"user_id", user_id}, {"is_online", online}};
  o["last_seen"] = known->last_seen ? boost::json::value(format_iso8601(*known->last_seen))
                                    : boost::json::value(nullptr);
  e.payload = boost::json::serialize(o);
  broker_.publish_ephemeral(e);
}

}  // namespace chat::realtime
