// Presence of a single node: socket counts in memory.
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "realtime/presence.hpp"

namespace chat::realtime {
namespace {

namespace asio = boost::asio;

class LocalPresence final : public Presence {
 public:
  LocalPresence(PresenceAnnouncer& announcer, std::chrono::milliseconds grace)
      : announcer_(announcer), grace_(grace) {}

  // The loop holds `this`: the presence must outlive the executor's running (serve destroys
  // it after its io_context has stopped). It ends at its first wake after shutting_down().
  void start_recording_seen(const SeenRefresh& seen) {
    asio::co_spawn(seen.executor, record_seen_every(seen.every), asio::detached);
  }

  asio::awaitable<void> connected(std::int64_t user_id, std::optional<Audience> audience) override {
    bool announce = false;
    {
      std::lock_guard lock(mutex_);
      auto& u = users_[user_id];
      // Back within the grace period: they never looked offline, so nothing to say.
      announce = ++u.sockets == 1 && !u.leaving;
      u.leaving = false;
    }
    if (announce) co_await announcer_.announce(user_id, true, std::move(audience));
  }

  void shutting_down() override {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }

  // One node is the whole server: no one else will record that these users left.
  asio::awaitable<void> stopped() override {
    std::vector<std::int64_t> ids;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [id, u] : users_) ids.push_back(id);
      users_.clear();
    }
    co_await announcer_.record_seen(std::move(ids));
  }

  asio::awaitable<void> disconnected(std::int64_t user_id) override {
    std::uint64_t ticket = 0;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) co_return;
      auto it = users_.find(user_id);
      if (it == users_.end() || --it->second.sockets > 0) co_return;
      it->second.leaving = true;
      ticket = ++it->second.ticket;
    }
    if (grace_.count() > 0) {
      asio::steady_timer timer(co_await asio::this_coro::executor, grace_);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    {
      std::lock_guard lock(mutex_);
      auto it = users_.find(user_id);
      if (it == users_.end() || it->second.ticket != ticket || !it->second.leaving) co_return;
      users_.erase(it);
    }
    co_await announcer_.went_offline(user_id, *this);
  }

  asio::awaitable<users::OnlineCounts> counts() override {
    users::OnlineCounts n;
    std::lock_guard lock(mutex_);
    n.users = static_cast<std::int64_t>(users_.size());
    for (const auto& [id, u] : users_) n.sockets += u.sockets;
    co_return n;
  }

  asio::awaitable<std::vector<bool>> online(std::vector<std::int64_t> ids) override {
    std::vector<bool> out;
    out.reserve(ids.size());
    std::lock_guard lock(mutex_);
    for (auto id : ids) out.push_back(users_.contains(id));  // leaving users still count
    co_return out;
  }

 private:
  static constexpr std::size_t kSeenBatch = 1000;  // users per write: the writer is shared

  asio::awaitable<void> record_seen_every(std::chrono::milliseconds every) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
      timer.expires_after(every);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      std::vector<std::int64_t> ids;
      Micros seen = 0;  // when the list was taken: a later offline's time stays (set_last_seen)
      {
        std::lock_guard lock(mutex_);
        if (stopping_) co_return;
        seen = now_micros();
        ids.reserve(users_.size());
        for (const auto& [id, u] : users_) ids.push_back(id);  // leaving ones were just seen
      }
      for (std::size_t i = 0; i < ids.size(); i += kSeenBatch) {
        const auto end =
            ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + kSeenBatch));
        std::vector<std::int64_t> batch(ids.begin() + static_cast<std::ptrdiff_t>(i), end);
        try {
          co_await announcer_.record_seen(std::move(batch), seen);
        } catch (const std::exception& e) {
          spdlog::warn("presence: recording who is online failed: {}", e.what());
          break;  // the next round tries again
        }
      }
    }
  }

  struct User {
    int sockets = 0;
    bool leaving = false;      // the last socket closed; the grace period runs
    std::uint64_t ticket = 0;  // which grace period may announce
  };

  PresenceAnnouncer& announcer_;
  std::chrono::milliseconds grace_;
  std::mutex mutex_;
  bool stopping_ = false;
  std::unordered_map<std::int64_t, User> users_;
};

}  // namespace

std::unique_ptr<Presence> make_local_presence(PresenceAnnouncer& announcer,
                                              std::chrono::milliseconds grace,
                                              std::optional<SeenRefresh> seen) {
  auto presence = std::make_unique<LocalPresence>(announcer, grace);
  if (seen) presence->start_recording_seen(*seen);
  return presence;
}

}  // namespace chat::realtime
