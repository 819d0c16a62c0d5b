#include "realtime/presence.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>

#include "realtime/broker.hpp"
#include "store/store.hpp"

namespace chat::realtime {

namespace asio = boost::asio;

boost::asio::awaitable<void> PresenceAnnouncer::went_offline(std::int64_t user_id,
                                                             users::OnlineUsers& online) {
  const Micros left_at = now_micros();  // last_seen, however late it is announced
  bool said = false;
  try {
    co_await say_offline(user_id, left_at);
    said = true;
  } catch (const store::Unavailable& e) {
    spdlog::warn("presence: announcing user {} offline failed, tried again later: {}", user_id,
                 e.what());
  }
  if (said) co_return;
  // Not awaited: the caller's round (a sweep of several users) must not wait for an outage.
  const auto executor = co_await asio::this_coro::executor;
  asio::co_spawn(executor, say_offline_later(user_id, left_at, online), asio::detached);
}

boost::asio::awaitable<void> PresenceAnnouncer::say_offline(std::int64_t user_id, Micros left_at) {
  std::vector<std::int64_t> ids{user_id};
  co_await store_.users().set_last_seen(std::move(ids), left_at);
  auto chat_ids = co_await store_.chats().chat_ids_of(user_id);
  Audience audience{std::move(chat_ids), left_at};
  co_await announce(user_id, false, std::move(audience));
}

boost::asio::awaitable<void> PresenceAnnouncer::say_offline_later(std::int64_t user_id,
                                                                  Micros left_at,
                                                                  users::OnlineUsers& online) {
  constexpr std::chrono::seconds kLongestPause{10};
  constexpr std::chrono::hours kGiveUpAfter{1};
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto give_up_at = std::chrono::steady_clock::now() + kGiveUpAfter;
  std::chrono::seconds pause{1};
  while (std::chrono::steady_clock::now() < give_up_at) {
    timer.expires_after(pause);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    pause = std::min(pause * 2, kLongestPause);
    std::vector<std::int64_t> ids{user_id};
    const auto back = co_await online.online(std::move(ids));
    if (!back.empty() && back[0]) co_return;  // online again: "offline" would be stale news
    try {
      co_await say_offline(user_id, left_at);
      co_return;
    } catch (const store::Unavailable&) {
      // Still away: the next pause.
    }
  }
  spdlog::warn("presence: user {} was not announced offline: the database stayed away", user_id);
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
