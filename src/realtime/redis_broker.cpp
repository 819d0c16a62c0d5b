#include "realtime/redis_broker.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <atomic>
#include <deque>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "realtime/broker_wire.hpp"
#include "redis/redis_client.hpp"
#include "redis/redis_subscriber.hpp"
#include "store/chat_store.hpp"

namespace chat::realtime {
namespace {

namespace asio = boost::asio;

constexpr int kCatchUpPage = 500;
constexpr std::size_t kRecentSeqs = 16384;
constexpr std::size_t kRecentEphemerals = 4096;
constexpr auto kFlushTimeout = std::chrono::seconds(1);

// Remembers the last N keys it was shown, to drop what arrives twice (an event on both a
// chat and a user channel, or found by a catch-up after it arrived live).
template <class Key>
class RecentSet {
 public:
  explicit RecentSet(std::size_t capacity) : capacity_(capacity) {}
  // False when the key was seen recently.
  bool insert(const Key& key) {
    if (!set_.insert(key).second) return false;
    order_.push_back(key);
    if (order_.size() > capacity_) {
      set_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }
  [[nodiscard]] bool contains(const Key& key) const { return set_.contains(key); }

 private:
  std::size_t capacity_;
  std::unordered_set<Key> set_;
  std::deque<Key> order_;
};

// The members a chat_created event names: their nodes must start hearing the chat.
std::vector<std::int64_t> created_for(const store::EventRecord& e) {
  std::vector<std::int64_t> out;
  if (e.user_id) {
    out.push_back(*e.user_id);
    return out;
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(e.payload, ec);
  if (ec || !v.is_object()) return out;
  const auto* chat = v.as_object().if_contains("chat");
  if (chat == nullptr || !chat->is_object()) return out;
  const auto* members = chat->as_object().if_contains("members");
  if (members == nullptr || !members->is_array()) return out;
  for (const auto& m : members->as_array()) {
    if (!m.is_object()) continue;
    const auto* id = m.as_object().if_contains("id");
    if (id != nullptr && id->is_int64()) out.push_back(id->get_int64());
  }
  return out;
}

class RedisBroker final : public Broker {
 public:
  RedisBroker(asio::any_io_executor executor, std::shared_ptr<redis::RedisClient> client,
              RedisBrokerOptions options, store::ChatStore& log)
      : strand_(asio::make_strand(executor)),
        client_(std::move(client)),
        prefix_(std::move(options.prefix)),
        log_(log) {
    std::random_device rd;
    node_ = std::to_string(rd()) + std::to_string(rd());
    subscriber_ = redis::RedisSubscriber::create(
        executor, options.host, options.port,
        [this](const std::string& /*channel*/, const std::string& message) {
          asio::post(strand_, [this, message] { on_message(message); });
        });
    subscriber_->on_state(
        [this](bool ready) { asio::post(strand_, [this, ready] { on_subscriber_state(ready); }); });
    subscriber_->start();
  }

  ~RedisBroker() override { subscriber_->stop(); }
  RedisBroker(const RedisBroker&) = delete;
  RedisBroker& operator=(const RedisBroker&) = delete;

  void set_handler(BrokerHandler* handler) override { handler_ = handler; }

  void publish_logged(const store::EventRecord& event) override {
    const std::string message = encode_logged(event);
    client_->send({"PUBLISH", chat_channel(event.chat_id), message});
    // Meant for one user, or a chat new to its members: their nodes may not hear the chat.
    if (event.user_id) {
      client_->send({"PUBLISH", user_channel(*event.user_id), message});
    } else if (event.type == "chat_created") {
      for (auto user : created_for(event)) {
        client_->send({"PUBLISH", user_channel(user), message});
      }
    }
  }

  void publish_ephemeral(const Ephemeral& event) override {
    const std::string message =
        encode_ephemeral(node_ + ":" + std::to_string(++ephemeral_counter_), event);
    for (auto chat_id : event.chat_ids) {
      client_->send({"PUBLISH", chat_channel(chat_id), message});
    }
  }

  // Replies come in order, so a PING answered means every PUBLISH before it was handled.
  // Runs on the strand, where the timer lives.
  asio::awaitable<void> flush() override {
    co_await asio::co_spawn(strand_, flush_on_strand(), asio::use_awaitable);
  }

  void subscribe(std::vector<std::int64_t> chat_ids, std::vector<std::int64_t> user_ids,
                 std::optional<std::int64_t> from_seq, std::function<void()> ready) override {
    asio::post(strand_, [this, chat_ids = std::move(chat_ids), user_ids = std::move(user_ids),
                         from_seq, ready = std::move(ready)]() mutable {
      start_hearing(std::move(chat_ids), std::move(user_ids), from_seq, std::move(ready));
    });
  }

  void unsubscribe(std::vector<std::int64_t> chat_ids,
                   std::vector<std::int64_t> user_ids) override {
    asio::post(strand_, [this, chat_ids = std::move(chat_ids), user_ids = std::move(user_ids)] {
      std::vector<std::string> channels;
      for (auto id : chat_ids) {
        auto it = chats_.find(id);
        if (it == chats_.end() || --it->second.refs > 0) continue;
        chats_.erase(it);
        channels.push_back(chat_channel(id));
      }
      for (auto id : user_ids) {
        auto it = users_.find(id);
        if (it == users_.end() || --it->second > 0) continue;
        users_.erase(it);
        channels.push_back(user_channel(id));
      }
      if (!channels.empty()) subscriber_->unsubscribe(std::move(channels));
    });
  }

  [[nodiscard]] bool healthy() const override { return client_->connected() && ready_; }

 private:
  // What the node knows of a chat it hears.
  struct ChatState {
    int refs = 0;
    bool live = false;           // false: catching up; live events wait in `held`
    std::int64_t delivered = 0;  // the newest seq of this chat handed to the hub
    std::vector<store::EventRecord> held;
  };

  std::string chat_channel(std::int64_t id) const { return prefix_ + "c:" + std::to_string(id); }
  std::string user_channel(std::int64_t id) const { return prefix_ + "u:" + std::to_string(id); }

  // ---- everything below runs on strand_ ----

  // Ends `wait` when Redis answers a PING (or cannot). Parameters, not lambda captures, so
  // they live in the coroutine frame after the flush gave up waiting.
  struct FlushWait {
    explicit FlushWait(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    bool done = false;
  };
  static asio::awaitable<void> ping(std::shared_ptr<redis::RedisClient> client,
                                    std::shared_ptr<FlushWait> wait) {
    try {
      std::vector<std::string> command{"PING"};
      co_await client->command(std::move(command));
    } catch (const std::exception&) {
      // Redis is away: nothing to wait for; the nodes catch up from the log later.
    }
    wait->done = true;
    wait->timer.cancel();
  }

  asio::awaitable<void> flush_on_strand() {
    auto wait = std::make_shared<FlushWait>(strand_);
    wait->timer.expires_after(kFlushTimeout);
    asio::co_spawn(strand_, ping(client_, wait), asio::detached);
    if (wait->done) co_return;  // the spawn may have run it through already
    boost::system::error_code ec;
    co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  void on_message(const std::string& message) {
    auto decoded = decode_broker_message(message);
    if (!decoded) {
      spdlog::warn("redis broker: dropped a malformed message");
      return;
    }
    if (auto* e = std::get_if<store::EventRecord>(&*decoded)) {
      receive_live(std::move(*e));
    } else {
      auto& w = std::get<WireEphemeral>(*decoded);
      if (recent_ephemerals_.insert(w.origin) && handler_ != nullptr) {
        handler_->on_ephemeral(w.event);
      }
    }
  }

  void receive_live(store::EventRecord e) {
    if (recent_.contains(e.seq)) return;
    auto it = chats_.find(e.chat_id);
    if (it != chats_.end() && !it->second.live) {
      it->second.held.push_back(std::move(e));
      return;
    }
    deliver(e);
  }

  void deliver(const store::EventRecord& e) {
    if (!recent_.insert(e.seq)) return;
    max_delivered_ = std::max(max_delivered_, e.seq);
    if (auto it = chats_.find(e.chat_id); it != chats_.end()) {
      it->second.delivered = std::max(it->second.delivered, e.seq);
    }
    if (handler_ != nullptr) handler_->on_logged(e);
  }

  void start_hearing(std::vector<std::int64_t> chat_ids, std::vector<std::int64_t> user_ids,
                     std::optional<std::int64_t> from_seq, std::function<void()> ready) {
    std::vector<std::int64_t> fresh;
    std::vector<std::string> channels;
    for (auto id : chat_ids) {
      auto& st = chats_[id];
      if (st.refs++ > 0) continue;
      st.delivered = from_seq.value_or(0);
      fresh.push_back(id);
      channels.push_back(chat_channel(id));
    }
    for (auto id : user_ids) {
      if (users_[id]++ == 0) channels.push_back(user_channel(id));
    }
    if (channels.empty()) {
      if (ready) ready();
      return;
    }
    asio::co_spawn(strand_, hear(std::move(fresh), std::move(channels), from_seq, std::move(ready)),
                   asio::detached);
  }

  // Subscribes, then reads what the log has for the fresh chats since the starting point,
  // then lets live events through: no gap between the log and the channel.
  asio::awaitable<void> hear(std::vector<std::int64_t> fresh, std::vector<std::string> channels,
                             std::optional<std::int64_t> from_seq, std::function<void()> ready) {
    if (!from_seq && !fresh.empty()) {
      std::int64_t start = max_delivered_;
      try {
        start = co_await log_.newest_seq();
      } catch (const std::exception& e) {
        spdlog::warn("redis broker: reading the event log failed: {}", e.what());
      }
      for (auto id : fresh) {
        if (auto it = chats_.find(id); it != chats_.end() && !it->second.live)
          it->second.delivered = std::max(it->second.delivered, start);
      }
    }
    co_await subscribed(std::move(channels));
    std::vector<std::int64_t> no_users;
    co_await catch_up(std::move(fresh), std::move(no_users), 0);
    if (ready) ready();
  }

  asio::awaitable<void> subscribed(std::vector<std::string> channels) {
    auto timer =
        std::make_shared<asio::steady_timer>(strand_, asio::steady_timer::time_point::max());
    subscriber_->subscribe(std::move(channels),
                           [this, timer] { asio::post(strand_, [timer] { timer->cancel(); }); });
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  // Delivers what the log holds after each chat's `delivered` (and, for `users`, events of
  // chats they belong to after `users_after`), then releases the held live events. Retries
  // while the database is away.
  asio::awaitable<void> catch_up(std::vector<std::int64_t> chat_ids,
                                 std::vector<std::int64_t> users, std::int64_t users_after) {
    std::int64_t after = users.empty() ? INT64_MAX : users_after;
    for (auto id : chat_ids) {
      if (auto it = chats_.find(id); it != chats_.end())
        after = std::min(after, it->second.delivered);
    }
    if (after != INT64_MAX) {
      asio::steady_timer pause(strand_);
      for (int failures = 0;;) {
        std::vector<store::EventRecord> page;
        bool failed = false;
        try {
          page = co_await log_.events_since(chat_ids, users, after, kCatchUpPage);
        } catch (const std::exception& e) {
          spdlog::warn("redis broker: catching up from the event log failed: {}", e.what());
          failed = true;
        }
        if (failed) {
          if (++failures > 60) break;  // give up on this round; the next reconnect retries
          pause.expires_after(std::chrono::milliseconds(500));
          boost::system::error_code ec;
          co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          continue;
        }
        for (const auto& e : page) {
          auto it = chats_.find(e.chat_id);
          const bool wanted =
              it != chats_.end() ? e.seq > it->second.delivered : e.seq > users_after;
          if (wanted) deliver(e);
        }
        if (static_cast<int>(page.size()) < kCatchUpPage) break;
        after = page.back().seq;
      }
    }
    for (auto id : chat_ids) {
      auto it = chats_.find(id);
      if (it == chats_.end() || it->second.live) continue;
      it->second.live = true;
      auto held = std::exchange(it->second.held, {});
      std::sort(held.begin(), held.end(),
                [](const auto& a, const auto& b) { return a.seq < b.seq; });
      for (const auto& e : held) {
        if (e.seq > it->second.delivered) deliver(e);
      }
    }
  }

  void on_subscriber_state(bool ready) {
    if (!ready) {
      ready_ = false;
      spdlog::warn("redis broker: lost the subscription connection; will catch up from the log");
      // Events arrive in commit order, so a chat that was live missed nothing before the
      // newest event this node heard.
      for (auto& [id, st] : chats_) {
        if (st.live) st.delivered = std::max(st.delivered, max_delivered_);
        st.live = false;
      }
      lost_at_ = max_delivered_;
      return;
    }
    const bool was_lost = lost_at_.has_value();
    ready_ = true;
    if (!was_lost) return;  // the first connection: nothing was missed
    spdlog::info("redis broker: subscribed again; catching up from the event log");
    std::vector<std::int64_t> chat_ids;
    for (const auto& [id, st] : chats_) chat_ids.push_back(id);
    std::vector<std::int64_t> users;
    for (const auto& [id, n] : users_) users.push_back(id);
    const std::int64_t users_after = *lost_at_;
    lost_at_.reset();
    asio::co_spawn(strand_, catch_up(std::move(chat_ids), std::move(users), users_after),
                   asio::detached);
  }

  asio::strand<asio::any_io_executor> strand_;
  std::shared_ptr<redis::RedisClient> client_;
  std::shared_ptr<redis::RedisSubscriber> subscriber_;
  std::string prefix_;
  store::ChatStore& log_;
  BrokerHandler* handler_ = nullptr;
  std::string node_;
  std::atomic<std::uint64_t> ephemeral_counter_ = 0;
  std::atomic<bool> ready_ = false;

  std::unordered_map<std::int64_t, ChatState> chats_;
  std::unordered_map<std::int64_t, int> users_;
  RecentSet<std::int64_t> recent_{kRecentSeqs};
  RecentSet<std::string> recent_ephemerals_{kRecentEphemerals};
  std::int64_t max_delivered_ = 0;
  std::optional<std::int64_t> lost_at_;
};

}  // namespace

std::unique_ptr<Broker> make_redis_broker(asio::any_io_executor executor,
                                          std::shared_ptr<redis::RedisClient> client,
                                          RedisBrokerOptions options, store::ChatStore& log) {
  return std::make_unique<RedisBroker>(std::move(executor), std::move(client), std::move(options),
                                       log);
}

}  // namespace chat::realtime
