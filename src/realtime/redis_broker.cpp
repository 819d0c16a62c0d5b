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

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "metrics/metrics.hpp"
#include "realtime/broker_wire.hpp"
#include "redis/redis_client.hpp"
#include "redis/redis_subscriber.hpp"
#include "store/chat_store.hpp"

namespace chat::realtime {
namespace {

namespace asio = boost::asio;

constexpr int kCatchUpPage = 500;
// A new chat naming more members than this reaches their channels as notices, not copies.
constexpr std::size_t kCreatedCopiesUpTo = 32;
// How long a notice's read may hold back every event from its seq on (on_chat_notice).
constexpr auto kNoticeGate = std::chrono::seconds(1);
constexpr std::size_t kRecentSeqs = 16384;
constexpr std::size_t kRecentEphemerals = 4096;
constexpr auto kFlushTimeout = std::chrono::seconds(1);
// After a COMMIT without an answer, when the nodes are asked to read the log again: past
// the event log's lock_timeout (10 s), which a backend still waiting for that lock when
// DB_TIMEOUT (under 10 s) gave up on it then has either taken or not.
constexpr auto kResyncAgainAfter = std::chrono::seconds(12);

// Publishes one transaction's events (ARGV[4..]: channel, message pairs) and keeps the
// newest seq handed to Redis in KEYS[1]. Seqs are gapless, so a transaction whose first
// seq (ARGV[2] + 1) is not the next one has found events that were committed and never
// published (their node was killed between its COMMIT and this script): every node is
// asked, on the resync channel (ARGV[1]) and before these events, to read them from the
// log. A missing key (a new or emptied Redis) proves nothing. One script, so Redis runs
// all of it or none of it: a node killed while sending it leaves no half-published
// transaction behind.
constexpr const char* kPublishCommitted = R"lua(
local published = tonumber(redis.call('GET', KEYS[1]))
if published and published < tonumber(ARGV[2]) then
  redis.call('PUBLISH', ARGV[1], tostring(published + 1))
end
for i = 4, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
if not published or published < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[3])
end
)lua";

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
  // The oldest key still remembered (what was shown before it is forgotten).
  [[nodiscard]] std::optional<Key> oldest() const {
    if (order_.empty()) return std::nullopt;
    return order_.front();
  }

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
  RedisBroker(const asio::any_io_executor& executor, std::shared_ptr<redis::RedisClient> client,
              RedisBrokerOptions options, store::ChatStore& log)
      : strand_(asio::make_strand(executor)),
        flush_strand_(asio::make_strand(executor)),
        client_(std::move(client)),
        prefix_(std::move(options.prefix)),
        max_held_(std::max<std::size_t>(options.max_held_events, 1)),
        log_(log) {
    std::random_device rd;
    node_ = std::to_string(rd()) + std::to_string(rd());
    subscriber_ = redis::RedisSubscriber::create(
        executor, options.host, options.port,
        [this](const std::string& channel, const std::string& message) {
          asio::post(strand_, [this, channel, message] { on_message(channel, message); });
        });
    subscriber_->on_state(
        [this](bool ready) { asio::post(strand_, [this, ready] { on_subscriber_state(ready); }); });
    subscriber_->start();
    // Every node hears resync requests for as long as it runs.
    subscriber_->subscribe({resync_channel()}, nullptr);
    asio::co_spawn(flush_strand_, watch_unsure(), asio::detached);
  }

  ~RedisBroker() override {
    stopped_ = true;
    subscriber_->stop();
  }
  RedisBroker(const RedisBroker&) = delete;
  RedisBroker& operator=(const RedisBroker&) = delete;

  void set_handler(BrokerHandler* handler) override { handler_ = handler; }

  void publish_committed(const std::vector<store::EventRecord>& events) override {
    if (events.empty()) return;
    {
      std::lock_guard lock(unsure_mutex_);
      if (first_unflushed_ == 0) first_unflushed_ = events.front().seq;
    }
    std::vector<std::string> command{"EVAL",
                                     kPublishCommitted,
                                     "1",
                                     published_key(),
                                     resync_channel(),
                                     std::to_string(events.front().seq - 1),
                                     std::to_string(events.back().seq)};
    for (const auto& e : events) {
      std::string message = encode_logged(e);
      command.push_back(chat_channel(e.chat_id));
      command.push_back(message);
      // Meant for one user, or a chat new to its members: their nodes may not hear the chat.
      if (e.user_id) {
        command.push_back(user_channel(*e.user_id));
        command.push_back(message);
      } else if (e.type == "chat_created") {
        // Each copy names every member, so copies for a large group would cost members²
        // bytes (a 10,000-member group: gigabytes in this one command). Past a few members
        // each gets a notice, and its node reads the event from the log (on_chat_notice).
        // Nodes of a version before notices drop them (README: Upgrades).
        const auto members = created_for(e);
        const std::string notice = members.size() > kCreatedCopiesUpTo
                                       ? encode_chat_notice({e.seq, e.chat_id})
                                       : std::string();
        for (auto user : members) {
          command.push_back(user_channel(user));
          command.push_back(notice.empty() ? message : notice);
        }
      }
    }
    client_->send(std::move(command));
  }

  void publish_ephemeral(const Ephemeral& event) override {
    const std::string message =
        encode_ephemeral(node_ + ":" + std::to_string(++ephemeral_counter_), event);
    for (auto chat_id : event.chat_ids) {
      client_->send({"PUBLISH", chat_channel(chat_id), message});
    }
  }

  void publish_session_end(const SessionEnd& end) override {
    client_->send({"PUBLISH", user_channel(end.user_id), encode_session_end(end)});
  }

  // Replies come in order, so a PING answered means every PUBLISH before it was handled.
  // When Redis does not answer in time, the events since the last answered PING may be
  // lost for the other nodes: they are asked to read them from the log (watch_unsure).
  asio::awaitable<void> flush() override {
    co_await asio::co_spawn(flush_strand_, flush_on_strand(), asio::use_awaitable);
  }

  void subscribe(std::vector<std::int64_t> chat_ids, std::vector<std::int64_t> user_ids,
                 std::optional<std::int64_t> from_seq, std::function<void()> ready) override {
    // Chats joined through the event deliver() is handing to the hub right now: the events
    // that follow it wait until those chats' own are read (hear), so that a user socket's
    // seqs keep growing. The gate is shut at once, before deliver() goes on to them. But
    // joined through a page of the one catch-up of every user running, they become that
    // catch-up's own at once, before it goes on with its page (adopt): it reads them in
    // seq order with the rest of its pages, and nothing waits. (Beside a second such
    // catch-up, which reads from elsewhere in the log and would pass their events over,
    // the gate and a read of their own are kept.)
    std::optional<std::uint64_t> gate;
    if (from_seq && !ready && !chat_ids.empty() && strand_.running_in_this_thread()) {
      if (auto a = adopters_.find(delivering_for_);
          a != adopters_.end() && adopters_.size() == 1 && user_ids.empty()) {
        adopt(a->second, a->first, chat_ids, *from_seq);
        return;
      }
      gate = shut_gate(*from_seq + 1);
    }
    asio::post(strand_, [this, chat_ids = std::move(chat_ids), user_ids = std::move(user_ids),
                         from_seq, ready = std::move(ready), gate]() mutable {
      start_hearing(chat_ids, user_ids, from_seq, std::move(ready), gate);
    });
  }

  void when_caught_up(std::int64_t user_id, std::function<void()> ready) override {
    asio::post(strand_, [this, user_id, ready = std::move(ready)]() mutable {
      if (opening_users_.contains(user_id)) {
        ready_when_caught_up_[user_id].push_back(std::move(ready));
      } else {
        ready();
      }
    });
  }

  void unsubscribe(std::vector<std::int64_t> chat_ids,
                   std::vector<std::int64_t> user_ids) override {
    asio::post(strand_, [this, chat_ids = std::move(chat_ids), user_ids = std::move(user_ids)] {
      std::vector<std::string> channels;
      for (auto id : chat_ids) {
        auto it = chats_.find(id);
        if (it == chats_.end() || --it->second.refs > 0) continue;
        unhold(it->second.held.size());
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

  void resync_from(std::int64_t first_seq) override {
    std::lock_guard lock(unsure_mutex_);
    unsure_from_locked(first_seq);
    // A COMMIT that got no answer may still land after the nodes have read the log: its
    // backend waiting for the event log's lock (up to lock_timeout). They are asked again
    // once it has landed or been undone. (In a busy deployment the next transaction's
    // script finds the gap sooner.)
    asked_later_.emplace_back(first_seq, std::chrono::steady_clock::now() + kResyncAgainAfter);
  }

  [[nodiscard]] bool healthy() const override { return client_->connected() && ready_; }

 private:
  // Events from `seq` on may not have reached the other nodes: the resync request (sent by
  // watch_unsure) starts at the lowest such seq. Under unsure_mutex_.
  void unsure_from_locked(std::int64_t seq) {
    unsure_from_ = unsure_from_ == 0 ? seq : std::min(unsure_from_, seq);
  }

  // Held events were dropped (hold): a catch-up reads the log again after `after`. `drop`
  // numbers the last such drop (drops_), to tell one during a catch-up's round from one
  // before it.
  struct Refill {
    std::int64_t after = 0;
    std::uint64_t drop = 0;
  };

  // What the node knows of a chat it hears.
  struct ChatState {
    int refs = 0;
    std::uint64_t gen = 0;       // a chat heard again after a pause is a new generation
    bool starting = true;        // the starting point is not known yet
    bool live = false;           // false: catching up; live events wait in `held`
    std::int64_t delivered = 0;  // the newest seq of this chat handed to the hub
    std::vector<store::EventRecord> held;
    std::optional<Refill> refill;  // its held events were dropped (hold)
  };
  using ChatRef = std::pair<std::int64_t, std::uint64_t>;  // id, generation

  // What a catch-up of every user adopted (adopt), was handed over (take_over) or handed on
  // (by another such catch-up as it ended): the map adopters_ holds one for each such
  // catch-up of this epoch while it runs, by its number.
  struct Adopted {
    std::vector<ChatRef> joined;  // not yet among the catch-up's own chats (take_adopted)
    int unsettled = 0;            // adoptions whose channels are not confirmed yet
    std::uint64_t confirmed = 0;  // adoptions whose channels are
    // Handed over (take_over): users new to the node, not yet among its readers, and the
    // lowest point the sockets read their chats at (set while something waits to be taken);
    // and the sockets' readiness, for its end.
    std::vector<std::int64_t> users;
    std::optional<std::int64_t> handed_from;
    std::vector<std::function<void()>> finishes;
    // Handed on by another catch-up of every user as it ended, not live yet.
    std::vector<ChatRef> handed_on;
    std::int64_t read_from = 0;  // where its read in flight (or last read) began
    bool behind = true;          // no read of it has reached the end of the log yet
  };

  // The chat's state while it is still the generation `ref` names; else null (it was
  // dropped, or heard again after a pause).
  ChatState* current(const ChatRef& ref) {
    auto it = chats_.find(ref.first);
    return it == chats_.end() || it->second.gen != ref.second ? nullptr : &it->second;
  }

  std::vector<std::int64_t> local_users() const {
    std::vector<std::int64_t> ids;
    ids.reserve(users_.size());
    for (const auto& [id, n] : users_) ids.push_back(id);
    return ids;
  }

  std::string chat_channel(std::int64_t id) const { return prefix_ + "c:" + std::to_string(id); }
  std::string user_channel(std::int64_t id) const { return prefix_ + "u:" + std::to_string(id); }
  std::string resync_channel() const { return prefix_ + "resync"; }
  std::string published_key() const { return prefix_ + "published"; }

  // ---- publishing side, on flush_strand_ ----

  struct FlushWait {
    explicit FlushWait(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    bool done = false;
    bool answered = false;
  };
  // Parameters, not lambda captures, so they live in the coroutine frame after the flush
  // gave up waiting.
  static asio::awaitable<void> ping(std::shared_ptr<redis::RedisClient> client,
                                    std::shared_ptr<FlushWait> wait) {
    try {
      std::vector<std::string> command{"PING"};
      co_await client->command(std::move(command));
      wait->answered = true;
    } catch (const std::exception&) {
      // Redis is away: nothing to wait for.
    }
    wait->done = true;
    wait->timer.cancel();
  }

  asio::awaitable<void> flush_on_strand() {
    std::int64_t covered = 0;
    {
      std::lock_guard lock(unsure_mutex_);
      covered = std::exchange(first_unflushed_, 0);
    }
    auto wait = std::make_shared<FlushWait>(flush_strand_);
    wait->timer.expires_after(kFlushTimeout);
    asio::co_spawn(flush_strand_, ping(client_, wait), asio::detached);
    if (!wait->done) {
      boost::system::error_code ec;
      co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!wait->answered && covered != 0) {
      std::lock_guard lock(unsure_mutex_);
      unsure_from_locked(covered);
    }
  }

  // Once Redis answers again, tells every node to read the log from the first event that
  // may not have reached them.
  asio::awaitable<void> watch_unsure() {
    asio::steady_timer timer(flush_strand_);
    while (!stopped_) {
      timer.expires_after(std::chrono::milliseconds(500));
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      std::int64_t from = 0;
      {
        std::lock_guard lock(unsure_mutex_);
        const auto now = std::chrono::steady_clock::now();
        std::erase_if(asked_later_, [&](const auto& later) {
          if (later.second > now) return false;
          unsure_from_locked(later.first);
          return true;
        });
        from = unsure_from_;
      }
      if (from == 0 || !client_->connected()) continue;
      bool sent = false;
      try {
        std::vector<std::string> command{"PUBLISH", resync_channel(), std::to_string(from)};
        co_await client_->command(std::move(command));
        sent = true;
      } catch (const std::exception&) {
        // Next round.
      }
      if (!sent) continue;
      spdlog::warn(
          "redis broker: events from seq {} may have missed other nodes; asked them "
          "to read the log",
          from);
      std::lock_guard lock(unsure_mutex_);
      if (unsure_from_ == from) unsure_from_ = 0;
    }
  }

  // ---- receiving side: everything below runs on strand_ ----

  void on_message(const std::string& channel, const std::string& message) {
    if (channel == resync_channel()) {
      std::int64_t from = 0;
      auto [p, ec] = std::from_chars(message.data(), message.data() + message.size(), from);
      if (ec == std::errc() && from > 0) resync(from - 1);
      return;
    }
    auto decoded = decode_broker_message(message);
    if (!decoded) {
      spdlog::warn("redis broker: dropped a malformed message on {}", channel);
      return;
    }
    if (auto* e = std::get_if<store::EventRecord>(&*decoded)) {
      max_heard_ = std::max(max_heard_, e->seq);
      receive_live(std::move(*e));
    } else if (auto* end = std::get_if<SessionEnd>(&*decoded)) {
      if (handler_ != nullptr) handler_->on_session_end(*end);
    } else if (auto* notice = std::get_if<ChatNotice>(&*decoded)) {
      on_chat_notice(*notice);  // not in max_heard_: the event itself was not heard
    } else {
      auto& w = std::get<WireEphemeral>(*decoded);
      if (recent_ephemerals_.insert(w.origin) && handler_ != nullptr) {
        try {
          handler_->on_ephemeral(w.event);
        } catch (const std::exception& ex) {
          spdlog::warn("redis broker: dropped an ephemeral event: {}", ex.what());
        }
      }
    }
  }

  void receive_live(store::EventRecord e) {
    if (recent_.contains(e.seq)) return;
    auto it = chats_.find(e.chat_id);
    if (it != chats_.end() && !it->second.live) {
      hold(it->second.held, std::move(e));
      return;
    }
    // A chat this node does not hear (an event meant for local users): while a catch-up
    // of every local user runs (after Redis was lost, a resync), or one reads again what
    // was dropped, it waits, so it cannot overtake older events of that catch-up; so do the
    // live events of every chat then. A catch-up for a user's first socket here holds
    // nothing back: that socket keeps what it gets until the catch-up is done and sends
    // it in seq order, and the user's other sockets opening meanwhile wait for it too
    // (when_caught_up). Held for it, such an event reached the live sockets of other users
    // it was meant for (a new chat's members) after newer events of other chats, and
    // their seq went back.
    if (it == chats_.end() && users_catching_up_ > 0 &&
        (every_user_catch_ups_ > 0 || untracked_refill_)) {
      hold(held_untracked_, std::move(e));
      return;
    }
    deliver(e);
  }

  // Keeps a live event until the catch-up it waits for is done. Everything held is in the
  // log, so past max_held_ what is held is dropped instead of growing for as long as the
  // database stays away: each catch-up concerned reads the log again from the first event
  // dropped (catch_up's refill), and what it reads goes out before what is held after.
  void hold(std::vector<store::EventRecord>& into, store::EventRecord e) {
    if (held_count_ >= max_held_) drop_held();
    into.push_back(std::move(e));
    ++held_count_;
    metrics::metrics().broker_held_events.add(1);
  }

  void unhold(std::size_t n) {
    held_count_ -= n;
    metrics::metrics().broker_held_events.add(-static_cast<std::int64_t>(n));
  }

  void note_dropped(std::vector<store::EventRecord>& held, std::optional<Refill>& refill) const {
    if (held.empty()) return;
    std::int64_t first = held.front().seq;
    for (const auto& e : held) first = std::min(first, e.seq);
    refill = Refill{std::min(refill ? refill->after : first - 1, first - 1), drops_};
    held = {};  // its memory too
  }

  void drop_held() {
    const std::size_t dropped = held_count_;
    ++drops_;
    for (auto& [id, st] : chats_) note_dropped(st.held, st.refill);
    note_dropped(held_untracked_, untracked_refill_);
    unhold(dropped);
    metrics::metrics().broker_held_dropped.inc(dropped);
    spdlog::warn(
        "redis broker: dropped {} live events held while catching up from the event log "
        "(REDIS_MAX_HELD_EVENTS); they will be read from the log",
        dropped);
  }

  void deliver(const store::EventRecord& e) {
    if (held_for_notice(e)) {
      if (!recent_.contains(e.seq)) gated_.try_emplace(e.seq, e);
      return;
    }
    if (!recent_.insert(e.seq)) return;
    if (auto it = chats_.find(e.chat_id); it != chats_.end()) {
      it->second.delivered = std::max(it->second.delivered, e.seq);
    }
    if (handler_ == nullptr) return;
    try {
      handler_->on_logged(e);
    } catch (const std::exception& ex) {
      spdlog::warn("redis broker: dropped event {}: {}", e.seq, ex.what());
    }
  }

  // A new chat's event, named by a notice on a local member's channel (publish_committed):
  // read from the log by the chat's id, once however many local members are told. While
  // it is read, what comes from its seq on waits, however it came (live, a catch-up, a
  // resync): so nothing the node hears or reads meanwhile (a busy chat's message, a removal
  // from the new chat) reaches a socket before the new chat does. That gate stays shut for
  // at most kNoticeGate; a read the database leaves that long unanswered holds back only
  // the new chat's own events until it succeeds. The chat's later events come with it, or
  // through the catch-up of the subscription its delivery makes the hub ask for.
  void on_chat_notice(const ChatNotice& n) {
    if (recent_.contains(n.seq) || !noticed_.insert(n.seq)) return;
    const std::uint64_t gate = shut_gate(n.seq);
    pending_chats_.try_emplace(n.chat_id, n.seq);
    asio::co_spawn(strand_, read_noticed(n, gate), asio::detached);
  }

  bool held_for_notice(const store::EventRecord& e) const {
    if (auto gate = lowest_gate(); gate && e.seq >= *gate) return true;
    auto it = pending_chats_.find(e.chat_id);
    return it != pending_chats_.end() && e.seq >= it->second;
  }

  // Holds back what comes from `seq` on (held_for_notice) until open_gate, for at most
  // kNoticeGate.
  std::uint64_t shut_gate(std::int64_t seq) {
    const std::uint64_t id = ++next_gate_;
    gates_.emplace(id, seq);
    gate_seqs_.insert(seq);
    asio::co_spawn(strand_, open_gate_after(id), asio::detached);
    return id;
  }

  // False when it was open already.
  bool close_gate_entry(std::uint64_t id) {
    auto it = gates_.find(id);
    if (it == gates_.end()) return false;
    gate_seqs_.erase(gate_seqs_.find(it->second));
    gates_.erase(it);
    return true;
  }

  void open_gate(std::uint64_t id) {
    if (close_gate_entry(id)) release_gated();
  }

  // Every delivery asks: many chats joined at once must not make each one scan them all.
  [[nodiscard]] std::optional<std::int64_t> lowest_gate() const {
    if (gate_seqs_.empty()) return std::nullopt;
    return *gate_seqs_.begin();
  }

  asio::awaitable<void> open_gate_after(std::uint64_t id) {
    asio::steady_timer timer(strand_, kNoticeGate);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    open_gate(id);
  }

  asio::awaitable<void> read_noticed(ChatNotice n, std::uint64_t gate) {
    asio::steady_timer pause(strand_);
    const std::vector<std::int64_t> chat{n.chat_id};
    const std::vector<std::int64_t> no_users;
    const std::uint64_t epoch = epoch_;
    for (int failures = 0; !stopped_;) {
      auto page = co_await read_log(pause, failures, "reading a new chat's events", chat, no_users,
                                    n.seq - 1);
      // Lost meanwhile: the catch-up after the loss reads the chat's events (it starts below
      // this notice's seq), in seq order with the rest; released from here, they went out
      // during the outage.
      if (epoch != epoch_) break;
      if (!page) continue;
      std::int64_t read_through = 0;
      for (auto& e : *page) {
        read_through = std::max(read_through, e.seq);
        if (!recent_.contains(e.seq)) gated_.try_emplace(e.seq, std::move(e));
      }
      if (read_through > 0) co_await heard_through(read_through);
      break;
    }
    close_gate_entry(gate);
    if (auto it = pending_chats_.find(n.chat_id);
        it != pending_chats_.end() && it->second == n.seq) {
      pending_chats_.erase(it);
    }
    release_gated();
  }

  // What no gate or unread new chat holds back any more goes on, in seq order.
  void release_gated() {
    std::vector<store::EventRecord> ready;
    const auto gate = lowest_gate();  // from there on everything waits
    for (auto it = gated_.begin(); it != gated_.end() && (!gate || it->first < *gate);) {
      if (held_for_notice(it->second)) {
        ++it;
        continue;
      }
      ready.push_back(std::move(it->second));
      it = gated_.erase(it);
    }
    for (const auto& e : ready) deliver(e);
  }

  // Counts one more interest in each chat. Those the node did not hear get a new state (a
  // new generation, delivered up to `from_seq` when it is known) and their channel in
  // `channels`; they are returned.
  std::vector<ChatRef> count_in(const std::vector<std::int64_t>& chat_ids,
                                std::optional<std::int64_t> from_seq,
                                std::vector<std::string>& channels) {
    std::vector<ChatRef> fresh;
    for (auto id : chat_ids) {
      auto& st = chats_[id];
      if (st.refs++ > 0) continue;
      st.gen = ++next_gen_;
      st.starting = !from_seq.has_value();
      st.delivered = from_seq.value_or(0);
      fresh.emplace_back(id, st.gen);
      channels.push_back(chat_channel(id));
    }
    return fresh;
  }

  void start_hearing(const std::vector<std::int64_t>& chat_ids,
                     const std::vector<std::int64_t>& user_ids,
                     std::optional<std::int64_t> from_seq, std::function<void()> ready,
                     std::optional<std::uint64_t> gate) {
    std::vector<std::int64_t> fresh_users;
    std::vector<std::string> channels;
    std::vector<ChatRef> fresh = count_in(chat_ids, from_seq, channels);
    for (auto id : user_ids) {
      if (users_[id]++ == 0) {
        ++users_added_;
        fresh_users.push_back(id);
        channels.push_back(user_channel(id));
        ++opening_users_[id];
      }
    }
    // Joined while the subscription connection is lost (a socket opening, say): the
    // catch-up after the loss reads them, and these users' events from their starting
    // point on (hand_over). A loss noticed while hear() waits for their channels does the
    // same (on_subscriber_state).
    const bool after_loss = lost_at_.has_value() && from_seq.has_value();
    if (after_loss && !fresh_users.empty()) lost_at_ = std::min(*lost_at_, *from_seq);
    if (after_loss) {
      for (const auto& ref : fresh) hand_over(*current(ref), *lost_at_);
    }
    // Joined while the catch-up of every user (after a loss, a resync) reads: that one
    // takes them (take_over). (Not a chat joined through an event: its gate holds the rest.)
    const std::uint64_t taken_by =
        !after_loss && from_seq && !gate && (!fresh.empty() || !fresh_users.empty())
            ? take_over(fresh, fresh_users, *from_seq)
            : 0;
    if (fresh.empty() && gate) {  // heard already: nothing to read
      open_gate(*gate);
      gate.reset();
    }
    if (channels.empty()) {
      if (ready) ready();
      return;
    }
    asio::co_spawn(strand_,
                   hear(std::move(fresh), std::move(fresh_users), std::move(channels), from_seq,
                        std::move(ready), gate, after_loss || taken_by != 0, taken_by),
                   asio::detached);
  }

  // A chat joined while the subscription connection is lost, from a seq past `lost_at`
  // (where the loss began): the catch-up after the loss reads it from there, with every
  // other chat of the node, and is its one reader (hear). Heard from that seq, past what
  // the node missed meanwhile, a chat made during the loss was never announced to a socket
  // open through it when another socket of a member opened meanwhile: its chat_created
  // was below that seq, and the catch-up passed it. Events below a socket's own starting
  // point that reach it so are dropped (the socket's cursor), and the hub keeps each
  // socket's own count of them (UnreadState::as_of).
  static void hand_over(ChatState& st, std::int64_t lost_at) {
    st.delivered = std::min(st.delivered, lost_at);
  }

  // An event dropped at a loss without going out: the catch-up after it reads its chat (if
  // heard) from below it.
  void read_again(const store::EventRecord& e) {
    if (auto it = chats_.find(e.chat_id); it != chats_.end()) hand_over(it->second, e.seq - 1);
  }

  // A socket opening while a catch-up of every user (after a loss, a resync) has not yet
  // read to the end of the log (of two, the one furthest behind): that catch-up takes the
  // socket's fresh chats, from where the read then in flight began if that is lower than
  // where the socket read its chats (that read's page holds their events for other local
  // members), and its users new to the node, whose events of chats the node does not hear
  // it then delivers from the socket's point on (take_adopted); it reads the log again
  // from that point if it has read past it. Heard from the socket's point beside it, a
  // chat made while Redis was away, whose chat_created that catch-up had not reached yet,
  // was passed over by it: the members' sockets open through the outage never heard of the
  // chat. Once a catch-up's read has reached the end of the log, what was committed before
  // it began (a chat made during the outage) was read, and it takes no more: each
  // hand-over costs it another read, and a stream of sockets opening kept it from ending.
  // Returns the catch-up's number, or 0 when none behind runs.
  std::uint64_t take_over(const std::vector<ChatRef>& fresh, const std::vector<std::int64_t>& users,
                          std::int64_t from_seq) {
    auto behind = adopters_.end();
    for (auto it = adopters_.begin(); it != adopters_.end(); ++it) {
      if (it->second.behind &&
          (behind == adopters_.end() || it->second.read_from < behind->second.read_from)) {
        behind = it;
      }
    }
    if (behind == adopters_.end()) return 0;
    Adopted& a = behind->second;
    for (const auto& ref : fresh) hand_over(*current(ref), std::min(from_seq, a.read_from));
    a.joined.insert(a.joined.end(), fresh.begin(), fresh.end());
    a.users.insert(a.users.end(), users.begin(), users.end());
    a.handed_from = std::min(a.handed_from.value_or(from_seq), from_seq);
    // Lost before it reads them: the catch-up after the loss reads the users from there.
    if (auto it = untracked_read_.find(behind->first);
        it != untracked_read_.end() && !users.empty()) {
      it->second = std::min(it->second, from_seq);
    }
    return behind->first;
  }

  // Starts hearing chats joined through an event that catch-up `reading` of every user is
  // delivering from its page (subscribe), as its own: it delivers their events after that
  // one (`from_seq`), in this page and the next, and makes them live at its end with the
  // others. Read on their own, they went live while that catch-up had still older pages
  // to read, and their live events reached a socket before older events of other chats.
  // Before it ends, the catch-up reads once more after their channels are confirmed
  // (joins_unsettled): what was published before is in the log, what after is held.
  void adopt(Adopted& a, std::uint64_t reading, const std::vector<std::int64_t>& chat_ids,
             std::int64_t from_seq) {
    std::vector<std::string> channels;
    const auto fresh = count_in(chat_ids, from_seq, channels);
    if (fresh.empty()) return;
    a.joined.insert(a.joined.end(), fresh.begin(), fresh.end());
    ++a.unsettled;
    subscriber_->subscribe(std::move(channels), [this, reading] {
      asio::post(strand_, [this, reading] {
        auto it = adopters_.find(reading);
        if (it == adopters_.end()) return;
        --it->second.unsettled;
        ++it->second.confirmed;
      });
    });
  }

  // Takes the chats catch-up `reading` adopted or was handed since the last call into its
  // own (`chats`, `ids`, `own`), and the users it was handed into its `readers`, whose
  // events of chats the node does not hear it then delivers from `users_after`, lowered to
  // where they start, and the chats another one handed on. When it was handed some,
  // returns the lowest point their sockets read their chats at, or where the other one
  // delivered the chats handed on to: the log must be read again from there if the
  // catch-up is past it.
  std::optional<std::int64_t> take_adopted(std::uint64_t reading, std::vector<ChatRef>& chats,
                                           std::vector<std::int64_t>& ids,
                                           std::unordered_set<std::int64_t>& own,
                                           std::vector<std::int64_t>& readers,
                                           std::int64_t& users_after) {
    auto a = adopters_.find(reading);
    if (a == adopters_.end()) return std::nullopt;
    auto take = [&](const ChatRef& ref) {
      chats.push_back(ref);
      ids.push_back(ref.first);
      own.insert(ref.first);
    };
    for (const auto& ref : std::exchange(a->second.joined, {})) {
      if (current(ref) != nullptr) take(ref);  // (else left again meanwhile)
    }
    const auto from = std::exchange(a->second.handed_from, std::nullopt);
    for (auto id : std::exchange(a->second.users, {})) {
      if (std::find(readers.begin(), readers.end(), id) == readers.end()) readers.push_back(id);
      users_after = std::min(users_after, *from);
    }
    // Handed on: read from where that catch-up delivered them to (what came after, held or
    // dropped, is read again with the rest), unless already among its own.
    auto back = from;
    for (const auto& ref : std::exchange(a->second.handed_on, {})) {
      const ChatState* st = current(ref);
      if (st == nullptr || own.contains(ref.first)) continue;
      take(ref);
      std::int64_t point = st->delivered;
      if (st->refill) point = std::min(point, st->refill->after);
      back = std::min(back.value_or(point), point);
    }
    return back;
  }

  // Where catch-up `reading` of every user reads the log from now (take_over).
  void reads_from(std::uint64_t reading, std::int64_t after) {
    if (auto a = adopters_.find(reading); a != adopters_.end()) a->second.read_from = after;
  }

  // Catch-up `reading` of every user has read to the end of the log (take_over).
  void reached_the_end(std::uint64_t reading) {
    if (auto a = adopters_.find(reading); a != adopters_.end()) a->second.behind = false;
  }

  // The channels of chats (and users) joined during a catch-up of every user that it
  // reads (adopt, hand_over) confirmed so far, to tell whether one was confirmed after a
  // read.
  struct Settled {
    std::uint64_t adopted = 0;
    std::uint64_t handed_over = 0;
    bool operator==(const Settled&) const = default;
  };
  Settled settled(std::uint64_t reading) const {
    auto a = adopters_.find(reading);
    return {a == adopters_.end() ? 0 : a->second.confirmed, handovers_confirmed_};
  }

  // Whether catch-up `reading` of every user must read again before it ends: a chat it
  // reads for others (adopted, handed over) has its channel confirmed since its last read
  // began (when `seen` were), or not yet. Waits for every such channel first, so that the
  // read begins after: what was published before it is in the log, what after is held.
  // (A hear() handed over may subscribe after the reconnect was confirmed: begun just as
  // Redis came back, or its SUBSCRIBE handled by the subscriber after that.)
  asio::awaitable<bool> joins_unsettled(std::uint64_t reading, Settled seen) {
    asio::steady_timer pause(strand_);
    for (;;) {
      auto a = adopters_.find(reading);
      if (a == adopters_.end() || stopped_) co_return false;  // stale (or not every user's)
      const bool handing_over = std::any_of(subscribing_.begin(), subscribing_.end(),
                                            [](const auto& h) { return h.second.handed; });
      if (a->second.unsettled == 0 && !handing_over) co_return settled(reading) != seen;
      pause.expires_after(std::chrono::milliseconds(2));
      boost::system::error_code ec;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // Subscribes, then reads what the log has for the fresh chats (and the fresh users'
  // chats) since the starting point, then lets live events through: no gap between the log
  // and the channel. Handed over (`handed_over`: joined while the subscription connection
  // is lost, or while the catch-up of every user reads; or lost while hear waits for their
  // channels), they are read by that catch-up, or the one after the loss, instead, and
  // `ready` waits for it. (Read here beside it too, such a chat went live at this read's
  // end, while that catch-up still read older events of other chats.)
  asio::awaitable<void> hear(std::vector<ChatRef> fresh, std::vector<std::int64_t> users,
                             std::vector<std::string> channels,
                             std::optional<std::int64_t> from_seq, std::function<void()> ready,
                             std::optional<std::uint64_t> gate, bool handed_over,
                             std::uint64_t taken_by) {
    std::int64_t start = from_seq.value_or(0);
    if (!from_seq) {
      asio::steady_timer pause(strand_);
      for (int attempt = 0;; ++attempt) {
        bool known = false;
        try {
          start = co_await log_.newest_seq();
          known = true;
        } catch (const std::exception& e) {
          if (attempt == 0)
            spdlog::warn("redis broker: reading the event log failed: {}", e.what());
        }
        if (known || stopped_) break;
        pause.expires_after(std::chrono::milliseconds(200));
        boost::system::error_code ec;
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      for (const auto& ref : fresh) {
        ChatState* st = current(ref);
        if (st == nullptr) continue;
        st->delivered = std::max(st->delivered, start);
        st->starting = false;
      }
    }
    const std::uint64_t hearing = from_seq ? ++hears_ : 0;
    if (from_seq) {
      subscribing_.emplace(hearing,
                           Subscribing{*from_seq, !users.empty(), handed_over, taken_by, fresh});
    }
    co_await subscribed(std::move(channels));
    bool handed = false;  // (a loss while it waited hands it over too: on_subscriber_state)
    if (auto h = subscribing_.extract(hearing); !h.empty()) {
      handed = h.mapped().handed;
      taken_by = h.mapped().taken_by;  // (none after a loss)
    }
    if (handed) ++handovers_confirmed_;
    const std::vector<std::int64_t> opening = users;
    const std::uint64_t epoch = epoch_;
    // Only sockets opening (`ready`, or users new to the node) hold what they get until they
    // are ready: a chat joined through an event is heard by sockets already live.
    const bool for_opening_sockets = ready != nullptr || !opening.empty();
    if (!handed) {
      co_await catch_up(std::move(fresh), std::move(users), start, false, for_opening_sockets);
    }
    std::function<void()> finish = [this, gate, ready = std::move(ready), opening] {
      if (gate) open_gate(*gate);
      if (ready) ready();
      for (const auto id : opening) {
        auto it = opening_users_.find(id);
        if (it == opening_users_.end() || --it->second > 0) continue;
        opening_users_.erase(it);
        auto waiting = ready_when_caught_up_.extract(id);
        if (waiting.empty()) continue;
        for (const auto& r : waiting.mapped()) r();
      }
    };
    // Cut short by a lost connection (stale), the catch-up left what it was reading to the
    // catch-up of every user that follows the loss: the socket, which holds what it gets
    // until `ready` and then sends it in seq order, waits for that one too (and so do the
    // user's other sockets opening meanwhile). Made ready at once, it sent newer events it
    // held before the older ones that catch-up then brought. So does a socket whose chats
    // that catch-up reads (`handed`), unless it has ended already; taken over by a catch-up
    // of every user that runs (take_over), at that one's end.
    if (auto a = adopters_.find(taken_by); a != adopters_.end()) {
      a->second.finishes.push_back(std::move(finish));
    } else if ((handed || epoch != epoch_) && !(ready_ && users_catching_up_ == 0)) {
      after_every_user_caught_up_.push_back(std::move(finish));
    } else {
      finish();
    }
  }

  // Every event up to `seq` has come in from Redis, for the channels this node hears:
  // seq's transaction was handed to Redis (the `published` key has reached it; seqs are
  // published in commit order), and then a SUBSCRIBE was confirmed, which Redis answers
  // after everything it sent this connection before. What a catch-up read from the log
  // waits for this before it goes on: an older event of another chat (committed just
  // before, or in the same transaction) could still be on its way into this node when the
  // newer ones from the log went out, and a user socket's seq went back. At most
  // kNoticeGate; gives up at once when Redis does not answer.
  asio::awaitable<void> heard_through(std::int64_t seq) {
    const auto deadline = std::chrono::steady_clock::now() + kNoticeGate;
    asio::steady_timer pause(strand_);
    for (;;) {
      std::optional<std::int64_t> published;  // nullopt: no key (an emptied Redis)
      bool answered = false;
      try {
        std::vector<std::string> command{"GET", published_key()};
        auto reply = co_await client_->command(std::move(command));
        answered = true;
        std::int64_t value = 0;
        const char* end = reply.str.data() + reply.str.size();
        if (reply.type == redis::Reply::Type::string &&
            std::from_chars(reply.str.data(), end, value).ec == std::errc()) {
          published = value;
        }
      } catch (const std::exception&) {
        answered = false;
      }
      if (!answered) co_return;
      if (!published || *published >= seq) break;
      if (std::chrono::steady_clock::now() >= deadline) co_return;
      pause.expires_after(std::chrono::milliseconds(2));
      boost::system::error_code ec;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    std::vector<std::string> barrier{prefix_ + "barrier:" + node_ + ":" +
                                     std::to_string(++barriers_)};
    const std::vector<std::string> drop = barrier;
    co_await subscribed(std::move(barrier), deadline);
    subscriber_->unsubscribe(drop);
  }

  // Subscribes and waits until the server has confirmed `channels` (or `until`).
  asio::awaitable<void> subscribed(
      std::vector<std::string> channels,
      asio::steady_timer::time_point until = asio::steady_timer::time_point::max()) {
    auto timer = std::make_shared<asio::steady_timer>(strand_, until);
    subscriber_->subscribe(std::move(channels),
                           [this, timer] { asio::post(strand_, [timer] { timer->cancel(); }); });
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  // A page of the log's events after `after` of these chats and users (ChatStore::
  // events_since), or nullopt when the read failed: the first failure of a run (`failures`)
  // is logged, and each waits a little longer (100 ms more, up to 2 s) before the caller
  // tries again.
  asio::awaitable<std::optional<std::vector<store::EventRecord>>> read_log(
      asio::steady_timer& pause, int& failures, const char* what, std::vector<std::int64_t> chats,
      std::vector<std::int64_t> users, std::int64_t after) {
    std::vector<store::EventRecord> page;
    bool failed = false;
    try {
      page = co_await log_.events_since(std::move(chats), std::move(users), after, kCatchUpPage);
    } catch (const std::exception& e) {
      if (failures == 0) spdlog::warn("redis broker: {} failed: {}", what, e.what());
      failed = true;
    }
    if (!failed) co_return std::move(page);
    ++failures;
    pause.expires_after(std::chrono::milliseconds(std::min(100 * failures, 2000)));
    boost::system::error_code ec;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return std::nullopt;
  }

  // Delivers what the log holds after each chat's `delivered` (and, for `users`, events of
  // chats they belong to after `users_after`), then releases the held live events. With
  // `fill_gaps`, anything not delivered recently is delivered, even below `delivered`
  // (a resync: an event may have been lost while later ones arrived). Retries while the
  // database is away. A chat is marked live only if neither it nor the subscription
  // connection changed meanwhile; otherwise the newer catch-up owns it. When held events
  // it would release were dropped meanwhile (hold), it reads again from the first of them
  // (refill_point).
  //
  // A catch-up of an earlier epoch (the subscription connection was lost since) is stale:
  // it delivers nothing more, not even the page it was reading (but for a first socket's
  // own chats), releases nothing and counts no more in users_catching_up_, which the loss
  // reset. The catch-up that follows the loss reads from where the stale one had got to
  // (untracked_read_), so what its page held comes from there, in seq order with the rest.
  //
  // A catch-up of every user takes the chats joined through its pages' events as its own
  // (adopt), and reads again before it ends while it adopts more (joins_unsettled).
  //
  // Only this catch-up's own chats (and chats the node does not hear) are delivered from
  // the log. A users' catch-up (a user's first socket here) also reads the users' other
  // chats; those are live, or owned by another catch-up, and their events come from there:
  // delivered from this read, newer events of one chat would overtake older events of
  // another still on their way through Redis, and a socket's seq would go back.
  asio::awaitable<void> catch_up(std::vector<ChatRef> chats, std::vector<std::int64_t> users,
                                 std::int64_t users_after, bool fill_gaps,
                                 bool first_sockets = false) {
    const std::uint64_t epoch = epoch_;
    if (!users.empty()) ++users_catching_up_;
    const bool every_user = !users.empty() && !first_sockets;
    if (every_user) ++every_user_catch_ups_;
    // How far it has read the events of chats the node does not hear (for a loss).
    const std::uint64_t reading = ++catch_ups_;
    if (!users.empty()) untracked_read_.emplace(reading, users_after);
    if (every_user) adopters_.try_emplace(reading);
    std::int64_t after = users.empty() ? INT64_MAX : users_after;
    std::vector<std::int64_t> ids;
    for (const auto& ref : chats) {
      const ChatState* st = current(ref);
      if (st == nullptr) continue;
      ids.push_back(ref.first);
      after = std::min(after, fill_gaps ? users_after : st->delivered);
      if (st->refill) after = std::min(after, st->refill->after);
    }
    std::unordered_set<std::int64_t> own(ids.begin(), ids.end());
    std::vector<std::int64_t> readers = users;  // whose chats' events are read
    bool all_users = false;                     // readers are every local user...
    std::int64_t unheard_after = INT64_MAX;     // ...for chats not heard dropped after this
    asio::steady_timer pause(strand_);
    std::int64_t delivered_through = 0;  // the newest seq delivered from the log
    std::int64_t heard = 0;              // ...that heard_through has waited for
    for (bool refill = false; after != INT64_MAX; refill = true) {
      const std::uint64_t round = drops_;  // the drops before this round
      const std::uint64_t added = users_added_;
      bool done = false;
      for (int failures = 0; !stopped_ && epoch == epoch_;) {
        if (auto back = take_adopted(reading, chats, ids, own, readers, users_after)) {
          after = std::min(after, *back);
        }
        const Settled seen = settled(reading);
        reads_from(reading, after);
        auto read = co_await read_log(pause, failures, "catching up from the event log", ids,
                                      readers, after);
        // Stale, a catch-up for a user's first socket still delivers its page's events of
        // its own chats: only the sockets opening hear those chats, and they hold what they
        // get until `ready` and send it in seq order. Nothing else: the loop ends. (Not a
        // catch-up of a chat joined through an event: live sockets hear it, and its page went
        // out during the loss, ahead of older events of other chats that the catch-up after
        // it brought.)
        const bool stale = epoch != epoch_;
        if (!read || (stale && !first_sockets)) continue;
        const auto& page = *read;
        // Handed over during the read: the page's events of those chats are theirs too (for
        // their other local members), and the log is read again from where the sockets
        // start (`back`) if this page went past that.
        auto back = take_adopted(reading, chats, ids, own, readers, users_after);
        delivering_for_ = every_user ? reading : 0;  // a chat joined now is adopted
        for (const auto& e : page) {
          auto it = chats_.find(e.chat_id);
          if (stale && !own.contains(e.chat_id)) continue;
          // Filling gaps (or what was dropped), an event the dedupe set no longer remembers
          // counts as delivered when its chat has gone past it.
          const bool remembered = recent_.oldest() && e.seq >= *recent_.oldest();
          bool wanted = false;  // only this catch-up's own chats, and chats not heard
          if (it == chats_.end()) {
            wanted = fill_gaps || e.seq > users_after || (all_users && e.seq > unheard_after);
          } else if (own.contains(e.chat_id)) {
            wanted = e.seq > it->second.delivered || ((fill_gaps || refill) && remembered);
          }
          if (wanted) {
            deliver(e);  // deliver() drops what was delivered recently
            delivered_through = std::max(delivered_through, e.seq);
            if (every_user) {  // the rest of the page
              auto more = take_adopted(reading, chats, ids, own, readers, users_after);
              if (more) back = std::min(back.value_or(*more), *more);
            }
          }
        }
        delivering_for_ = 0;
        if (!page.empty()) after = page.back().seq;
        const bool rewound = back && *back < after;
        if (rewound) after = *back;
        if (auto it = untracked_read_.find(reading);
            it != untracked_read_.end() && !readers.empty()) {
          it->second = rewound ? std::min(it->second, after) : std::max(it->second, after);
        }
        // Every chat made before this read began has been read: no more hand-overs (a
        // rewind to their point still reads what they need).
        if (static_cast<int>(page.size()) < kCatchUpPage) reached_the_end(reading);
        if (rewound) continue;  // read again from the sockets' point
        if (static_cast<int>(page.size()) < kCatchUpPage) {
          if (co_await joins_unsettled(reading, seen)) continue;  // from `after` again
          done = true;
          break;
        }
      }
      if (!done) break;
      // Before the round is judged: held events dropped while it waits (past
      // REDIS_MAX_HELD_EVENTS) are read again by the next round like any others.
      if (delivered_through > heard && epoch == epoch_) {
        co_await heard_through(delivered_through);
        heard = delivered_through;
      }
      if (epoch != epoch_) break;  // lost meanwhile: stale
      // A user new here since the round began was not among its readers.
      refilled(chats, ids, all_users && added == users_added_, round, after);
      // Chats another catch-up handed on meanwhile (as it ended): held events of theirs
      // dropped are read again by the next round with the rest (nothing waits from here
      // to this one's end).
      take_adopted(reading, chats, ids, own, readers, users_after);
      after = refill_point(chats, users.size(), ids, readers, unheard_after);
      all_users = !readers.empty();
    }
    // What waited meanwhile goes out in one seq order across chats: released chat by chat,
    // a chat's held events would overtake another's older ones.
    struct Waiting {
      store::EventRecord event;
      bool of_chat;  // held by its chat, made live now (else held as untracked)
    };
    untracked_read_.erase(reading);
    auto mine = adopters_.extract(reading);
    if (epoch != epoch_) co_return;  // stale
    std::vector<Waiting> waiting;
    if (every_user) --every_user_catch_ups_;
    const bool last = !users.empty() && --users_catching_up_ == 0;
    // Held only while a catch-up of every user runs (receive_live): released when the last
    // of those ends, unless what was dropped is still to be read again. (The last catch-up
    // of users reads that itself before it ends: refill_point. One cut short by a loss is
    // stale, and the loss hands the rest to the next.)
    if (last || (every_user && every_user_catch_ups_ == 0 && !untracked_refill_)) {
      unhold(held_untracked_.size());
      for (auto& e : std::exchange(held_untracked_, {})) waiting.push_back({std::move(e), false});
    }
    // Beside another catch-up of every user (after a loss and a resync), its chats become
    // that one's, and go live with everything held at the last one's end, in one seq order.
    // Made live at the first one's end, a chat's held events went out while older events
    // of chats the node does not hear (a new chat's chat_created) were still held for the
    // other one, and a socket's seq went back.
    const bool hand_on = every_user && !adopters_.empty();
    if (ready_) {  // else the connection was lost meanwhile
      for (const auto& ref : chats) {
        ChatState* st = current(ref);
        if (st == nullptr || st->live) continue;
        if (hand_on) {
          adopters_.begin()->second.handed_on.push_back(ref);
          continue;
        }
        st->live = true;
        unhold(st->held.size());
        for (auto& e : std::exchange(st->held, {})) waiting.push_back({std::move(e), true});
      }
    }
    std::stable_sort(waiting.begin(), waiting.end(),
                     [](const auto& a, const auto& b) { return a.event.seq < b.event.seq; });
    for (const auto& w : waiting) {
      auto it = chats_.find(w.event.chat_id);
      if (!w.of_chat) {
        // A chat heard since, by a socket's own catch-up from past this event (a socket
        // that read its chats after it): that one does not bring it. It came for local
        // users, on their channels, before the node heard the chat (a new chat's
        // chat_created for a member's socket already open): it goes out now, with what
        // was held (late, after newer events of the log, but not lost).
        if (it != chats_.end() && !it->second.live && w.event.seq <= it->second.delivered) {
          deliver(w.event);
        } else {
          receive_live(w.event);
        }
        continue;
      }
      if (it != chats_.end() && w.event.seq > it->second.delivered) deliver(w.event);
    }
    // The sockets handed over to it (take_over) are ready, unless another catch-up of every
    // user still runs (it may bring older events of their other chats yet): then at its end.
    if (!mine.empty()) {
      for (auto& f : mine.mapped().finishes) {
        if (adopters_.empty()) {
          f();
        } else {
          adopters_.begin()->second.finishes.push_back(std::move(f));
        }
      }
    }
    // (A node without user sockets catches up no users: its chats' catch-up is the one.)
    // Not before the catch-up after a loss has begun: a catch-up of users ending while
    // Redis is still away, or back but not yet confirmed, is not that one.
    if (users_catching_up_ == 0 && ready_ && !lost_at_) {
      for (const auto& finish : std::exchange(after_every_user_caught_up_, {})) finish();
    }
  }

  // What a round of a catch-up (catch_up) has read from the log, through seq
  // `read_through`: every event dropped before the round began, and, as seqs commit in
  // order, every one dropped during it up to there. A chat (or the chats not heard, when
  // the round read every local user's) whose events were dropped during the round is read
  // again from there, not from its first drop: a busy chat would make each round longer.
  void refilled(const std::vector<ChatRef>& chats, const std::vector<std::int64_t>& ids,
                bool all_users, std::uint64_t round, std::int64_t read_through) {
    auto done = [&](std::optional<Refill>& refill) {
      if (!refill) return;
      if (refill->drop <= round) {
        refill.reset();
      } else {
        refill->after = std::max(refill->after, read_through);
      }
    };
    const std::unordered_set<std::int64_t> read(ids.begin(), ids.end());
    for (const auto& ref : chats) {
      if (ChatState* st = current(ref); st != nullptr && read.contains(ref.first)) done(st->refill);
    }
    if (all_users) done(untracked_refill_);
  }

  // Where a catch-up reads the log again, when held events it would release were dropped
  // (hold): from the first of its chats' marks, and, for the last catch-up of users
  // (`users` > 0), from the mark of the chats the node does not hear, reading every local
  // user's events. Every chat of the catch-up still waiting is read in such a round, so
  // that what it delivers goes out in one seq order across them. Sets what to read in
  // `ids` and `readers`, and in `unheard_after` where the chats not heard are read from;
  // INT64_MAX: nothing. A mark stays until a round has read past it (refilled), so no
  // other catch-up of the chat makes it live before then.
  std::int64_t refill_point(const std::vector<ChatRef>& chats, std::size_t users,
                            std::vector<std::int64_t>& ids, std::vector<std::int64_t>& readers,
                            std::int64_t& unheard_after) {
    std::int64_t after = INT64_MAX;
    std::vector<std::int64_t> waiting;
    readers.clear();
    unheard_after = INT64_MAX;
    for (const auto& ref : chats) {
      const ChatState* st = current(ref);
      if (st == nullptr || st->live) continue;
      waiting.push_back(ref.first);
      if (st->refill) after = std::min(after, st->refill->after);
    }
    if (users > 0 && users_catching_up_ == 1 && untracked_refill_) {
      unheard_after = untracked_refill_->after;
      after = std::min(after, unheard_after);
      readers = local_users();
    }
    ids = after == INT64_MAX ? std::vector<std::int64_t>{} : std::move(waiting);
    return after;
  }

  // Events after `after` may have been committed without reaching this node (another node
  // could not be sure its events reached Redis, or was killed before publishing them):
  // read them from the log. Live events of the chats wait meanwhile, so that the missing
  // ones come first (a request that arrives before the newer events keeps commit order).
  void resync(std::int64_t after) {
    std::vector<ChatRef> chats;
    for (auto& [id, st] : chats_) {
      if (st.starting) continue;
      // A chat still catching up has delivered only up to `delivered`; its own catch-up
      // skips what this one delivers past that, so this one reads from there too.
      if (!st.live) after = std::min(after, st.delivered);
      if (st.refill) after = std::min(after, st.refill->after);
      st.live = false;
      chats.emplace_back(id, st.gen);
    }
    std::vector<std::int64_t> users = local_users();
    asio::co_spawn(strand_, catch_up(std::move(chats), std::move(users), after, true),
                   asio::detached);
  }

  void on_subscriber_state(bool ready) {
    if (!ready) {
      ready_ = false;
      ++epoch_;
      spdlog::warn("redis broker: lost the subscription connection; will catch up from the log");
      // Events arrive in commit order, so a chat that was live missed nothing before the
      // newest event this connection brought, but for what waits behind a notice's gate
      // (from the new chat's event on): the catch-up starts below that.
      std::int64_t heard = max_heard_;
      if (auto gate = lowest_gate()) heard = std::min(heard, *gate - 1);
      for (const auto& [chat, seq] : pending_chats_) heard = std::min(heard, seq - 1);
      // What waits behind a gate is read again by that catch-up, in seq order with the rest:
      // released meanwhile by a gate's timer, it went out during the loss, ahead of older
      // events that catch-up then brought.
      if (!gated_.empty()) heard = std::min(heard, gated_.begin()->first - 1);
      for (const auto& [seq, e] : gated_) read_again(e);  // (one below what its chat delivered)
      gated_.clear();
      // Chats the node does not hear were heard only where the catch-ups of users still
      // running had read them to: this connection brought newer events, but the events
      // of such chats committed while Redis was away (a new chat, a member added) were
      // still to be read. Started from max_heard_, the next catch-up passed them, and a
      // chat whose chat_created it passed was never heard (Redis lost twice in a row).
      for (const auto& [catch_up, read] : untracked_read_) heard = std::min(heard, read);
      // A hear() waiting for its channels is handed over to the catch-up after the loss
      // (hand_over): its users' events were still to be read from its starting point.
      for (auto& [hearing, h] : subscribing_) {
        h.handed = true;
        h.taken_by = 0;  // to the catch-up after the loss
        if (h.users) heard = std::min(heard, h.from);
      }
      untracked_read_.clear();
      for (auto& [reading, a] : adopters_) {  // the sockets handed over wait for it too
        for (auto& f : a.finishes) after_every_user_caught_up_.push_back(std::move(f));
      }
      adopters_.clear();  // the catch-up after the loss reads the adopted chats with the rest
      // Events of such chats held for those catch-ups (receive_live), and dropped ones, were
      // heard but not delivered: the next catch-up reads them, in seq order with the rest.
      // Kept, they went out at its end, after its newer events of the same chats (which the
      // hub, not hearing the chat yet, dropped: lost) and after newer events of others.
      if (untracked_refill_) heard = std::min(heard, untracked_refill_->after);
      for (const auto& e : held_untracked_) {
        heard = std::min(heard, e.seq - 1);
        // Of a chat a socket's own read has begun hearing since, from past it (a new chat's
        // chat_created for members open through the outage): that chat is read from below
        // it, or it was lost.
        read_again(e);
      }
      metrics::metrics().broker_held_dropped.inc(held_untracked_.size());
      unhold(held_untracked_.size());
      held_untracked_ = {};
      untracked_refill_.reset();
      // The catch-ups running are stale (catch_up): the one after the loss does their work.
      users_catching_up_ = 0;
      every_user_catch_ups_ = 0;
      for (auto& [id, st] : chats_) {
        if (st.live) st.delivered = std::max(st.delivered, heard);
        st.live = false;
        st.refill.reset();  // the catch-up below reads from `delivered`, before them
      }
      // (Nothing of a chat whose channel hear() waits for was delivered yet.)
      for (const auto& [hearing, h] : subscribing_) {
        for (const auto& ref : h.chats) {
          if (ChatState* st = current(ref)) hand_over(*st, heard);
        }
      }
      lost_at_ = heard;
      return;
    }
    ready_ = true;
    if (!lost_at_) return;  // the first connection: nothing was missed
    spdlog::info("redis broker: subscribed again; catching up from the event log");
    std::vector<ChatRef> chats;
    for (const auto& [id, st] : chats_) {
      if (!st.starting) chats.emplace_back(id, st.gen);  // a starting chat catches up itself
    }
    std::vector<std::int64_t> users = local_users();
    const std::int64_t users_after = *lost_at_;
    lost_at_.reset();
    asio::co_spawn(strand_, catch_up(std::move(chats), std::move(users), users_after, false),
                   asio::detached);
  }

  asio::strand<asio::any_io_executor> strand_;
  asio::strand<asio::any_io_executor> flush_strand_;  // writes never wait behind fan-out
  std::shared_ptr<redis::RedisClient> client_;
  std::shared_ptr<redis::RedisSubscriber> subscriber_;
  std::string prefix_;
  std::size_t max_held_;  // events held at once (hold)
  store::ChatStore& log_;
  BrokerHandler* handler_ = nullptr;
  std::string node_;
  std::atomic<std::uint64_t> ephemeral_counter_ = 0;
  std::uint64_t barriers_ = 0;  // heard_through's channels (strand)
  std::atomic<bool> ready_ = false;
  std::atomic<bool> stopped_ = false;

  std::mutex unsure_mutex_;
  std::int64_t first_unflushed_ = 0;  // the first seq published since the last flush
  std::int64_t unsure_from_ = 0;      // the first seq that may not have reached Redis
  // resync_from()'s seqs, to be asked for again at these times (kResyncAgainAfter).
  std::vector<std::pair<std::int64_t, std::chrono::steady_clock::time_point>> asked_later_;

  std::unordered_map<std::int64_t, ChatState> chats_;
  std::unordered_map<std::int64_t, int> users_;
  std::uint64_t next_gen_ = 0;
  std::uint64_t epoch_ = 0;  // counts lost subscription connections
  // Catch-ups of users running in this epoch (stale ones no longer count).
  int users_catching_up_ = 0;
  // Of those, the catch-ups of every local user (not of first sockets: catch_up).
  int every_user_catch_ups_ = 0;
  std::uint64_t catch_ups_ = 0;  // numbers each catch-up
  // For each catch-up of users of this epoch: the seq up to which it has read the events of
  // the chats the node does not hear (from its start on).
  std::map<std::uint64_t, std::int64_t> untracked_read_;
  std::map<std::uint64_t, Adopted> adopters_;
  // The hear()s from a known seq waiting for their channels, by number: where they start,
  // whether they have users new to the node, whether the catch-up after a loss reads for
  // them (hand_over), and their fresh chats; and how many of those handed over have been
  // confirmed since (joins_unsettled).
  struct Subscribing {
    std::int64_t from = 0;
    bool users = false;
    bool handed = false;
    std::uint64_t taken_by = 0;  // the catch-up of every user it was handed to (take_over)
    std::vector<ChatRef> chats;
  };
  std::map<std::uint64_t, Subscribing> subscribing_;
  std::uint64_t hears_ = 0;
  std::uint64_t handovers_confirmed_ = 0;
  std::uint64_t delivering_for_ = 0;  // the catch-up whose page deliver() hands out (0: none)
  // Users whose first socket here is being caught up (hear), and what waits for that: the
  // readiness of their other sockets opening meanwhile.
  std::unordered_map<std::int64_t, int> opening_users_;
  std::unordered_map<std::int64_t, std::vector<std::function<void()>>> ready_when_caught_up_;
  // What waits for the catch-up of every user after a loss (for every catch-up of users of
  // the new epoch to end): the end of sockets' catch-ups that the loss cut short (hear).
  std::vector<std::function<void()>> after_every_user_caught_up_;
  std::vector<store::EventRecord> held_untracked_;
  std::optional<Refill> untracked_refill_;        // as ChatState::refill
  std::size_t held_count_ = 0;                    // in every chat's `held` and in held_untracked_
  std::uint64_t drops_ = 0;                       // times held events were dropped (hold)
  std::uint64_t users_added_ = 0;                 // users that became local (start_hearing)
  RecentSet<std::int64_t> noticed_{kRecentSeqs};  // notices read already (by seq)
  // Gates shut (shut_gate: a notice being read, a chat joined through an event), the new
  // chats of notices by id (with their seq), and the events waiting for them, by seq.
  std::map<std::uint64_t, std::int64_t> gates_;  // by id (shut_gate): the first seq held back
  std::multiset<std::int64_t> gate_seqs_;        // the same seqs, in order
  std::uint64_t next_gate_ = 0;
  std::unordered_map<std::int64_t, std::int64_t> pending_chats_;
  std::map<std::int64_t, store::EventRecord> gated_;
  RecentSet<std::int64_t> recent_{kRecentSeqs};
  RecentSet<std::string> recent_ephemerals_{kRecentEphemerals};
  std::int64_t max_heard_ = 0;  // the newest seq the subscription connection brought
  std::optional<std::int64_t> lost_at_;
};

}  // namespace

std::unique_ptr<Broker> make_redis_broker(const asio::any_io_executor& executor,
                                          std::shared_ptr<redis::RedisClient> client,
                                          RedisBrokerOptions options, store::ChatStore& log) {
  return std::make_unique<RedisBroker>(executor, std::move(client), std::move(options), log);
}

}  // namespace chat::realtime
