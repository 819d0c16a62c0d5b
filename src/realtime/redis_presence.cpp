// Presence across nodes, in Redis (Centrifuge's presence_redis). For each user a sorted set
// holds the nodes that have a socket of theirs, scored by when that entry expires; each node
// refreshes its entries every third of the TTL and sweeps the expired ones every sixth, and
// an entry lives five sixths of the TTL, so a node that dies has its users found offline
// within the TTL. A "state" key remembers what was announced: "1" online, "0" offline. Whoever
// turns it to "1" announces "online", whoever turns it to "0" announces "offline", so each
// happens once however many nodes race. "1" outlives the entries and is refreshed with
// them, "0" is kept for a day, so a missing state means Redis lost its data: a user found
// with no sockets is then announced offline (they may have been announced online), and a
// node restoring entries it refreshed within the TTL does so silently (no sweep can have
// announced that user offline, so they were announced online, and still are).
// A global sorted set of deadlines lets any node find a dead node's users.
// For the admin pages' counts, a sorted set of the users announced online (scored by when
// their state expires) and each node's socket count (with an expiry of its own).
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <mutex>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "realtime/presence.hpp"
#include "realtime/redis_keys.hpp"
#include "redis/redis_client.hpp"

namespace chat::realtime {
namespace {

namespace asio = boost::asio;

constexpr std::size_t kSweepBatch = 500;
// How long "announced offline" is remembered (see above).
constexpr std::chrono::milliseconds kOfflineStateTtl = std::chrono::hours(24);
// After Redis comes back, how long a node waits before announcing the offlines it could
// not announce meanwhile: the other nodes resubscribe with a backoff of up to 2 s, and
// what is published before they do never reaches their sockets.
constexpr std::chrono::seconds kResubscribeWindow{3};

using Clock = std::chrono::steady_clock;

// KEYS: entries, state, deadlines, online users.
// ARGV: node, user, ttl ms, state ttl ms, "open" or "restore".
// Adds (or extends) this node's entry; returns 1 when the user is to be announced online:
// announced offline before, or ("open") nothing known. "restore": the node's user was
// announced online before, so a missing state is Redis's lost data, put back silently.
// The state key outlives the entries (state ttl > ttl), so the node that finds them expired
// still finds the state and announces "offline".
constexpr const char* kConnect = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expiry = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[3], expiry, ARGV[2] .. ':' .. ARGV[1])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[2])
local state = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
if state == '1' then return 0 end
if state == false and ARGV[5] == 'restore' then return 0 end
return 1
)lua";

// KEYS: entries, state, deadlines, online users. ARGV: node, user, linger ms.
// The node's last socket of the user closed: its entry stays live for the grace period only.
constexpr const char* kLinger = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expiry = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZADD', KEYS[3], expiry, ARGV[2] .. ':' .. ARGV[1])
return 1
)lua";

// KEYS: entries, state, deadlines, online users. ARGV: node, user, offline state ttl ms.
// Drops the node's entry if it has expired, and any other expired one; returns 1 when that
// left nobody and this call is the one to announce "offline" (not already announced), 2
// when nobody is left and "offline" was already said.
constexpr const char* kRelease = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, node in ipairs(expired) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('ZREM', KEYS[3], ARGV[2] .. ':' .. node)
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[2])
  if redis.call('GET', KEYS[2]) ~= '0' then
    redis.call('SET', KEYS[2], '0', 'PX', ARGV[3])
    return 1
  end
  return 2
end
return 0
)lua";

// KEYS: deadlines. ARGV: prefix, max, offline state ttl ms.
// Finds entries past their deadline (a dead node's, or a lingering one nobody released) and
// releases them; returns how many were due, then the users now to be announced offline.
constexpr const char* kSweep = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local gone = {#due}
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local sep = string.find(member, ':', 1, true)
  local user = string.sub(member, 1, sep - 1)
  local node = string.sub(member, sep + 1)
  local entries = ARGV[1] .. 'p:' .. user
  local score = redis.call('ZSCORE', entries, node)
  if score and tonumber(score) <= now then redis.call('ZREM', entries, node) end
  if redis.call('ZCOUNT', entries, '(' .. now, '+inf') == 0 then
    redis.call('DEL', entries)
    local state = ARGV[1] .. 'ps:' .. user
    if redis.call('GET', state) ~= '0' then
      redis.call('SET', state, '0', 'PX', ARGV[3])
      table.insert(gone, user)
    end
    redis.call('ZREM', ARGV[1] .. 'po', user)
  end
end
redis.call('ZREMRANGEBYSCORE', ARGV[1] .. 'po', '-inf', now)
return gone
)lua";

// KEYS: the entries of each user asked about. Returns, per user, how many live nodes.
constexpr const char* kCount = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('ZCOUNT', key, '(' .. now, '+inf') end
return out
)lua";

// KEYS: socket counts (hash), their expiries. ARGV: node, value, ttl ms, "add" or "set".
// Moves (or sets) this node's socket count and keeps it alive for the TTL.
constexpr const char* kSockets = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if ARGV[4] == 'add' then
  redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
)lua";

// KEYS: online users, socket counts, their expiries. Forgets the counts of nodes that
// stopped refreshing them; returns {online users, sockets}.
constexpr const char* kTotals = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local users = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('HDEL', KEYS[2], node)
  redis.call('ZREM', KEYS[3], node)
end
local sockets = 0
local counts = redis.call('HVALS', KEYS[2])
for _, n in ipairs(counts) do sockets = sockets + tonumber(n) end
return {users, sockets}
)lua";

class RedisPresence final : public Presence, public std::enable_shared_from_this<RedisPresence> {
 public:
  RedisPresence(PresenceAnnouncer& announcer, std::shared_ptr<redis::RedisClient> client,
                RedisPresenceOptions options)
      : announcer_(announcer), client_(std::move(client)), options_(std::move(options)) {
    node_ = options_.node.empty() ? new_node_id() : options_.node;
  }

  void start(const asio::any_io_executor& executor) {
    asio::co_spawn(executor, keep_alive(), asio::detached);
  }

  void stop() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }

  asio::awaitable<void> connected(std::int64_t user_id, std::optional<Audience> audience) override {
    {
      std::lock_guard lock(mutex_);
      auto& u = users_[user_id];
      ++u.ticket;  // a grace period running for this user ends without a word
      report_sockets(1, "add");
      if (++u.sockets > 1) co_return;
      unsure_offline_.erase(user_id);
      unsure_online_.erase(user_id);
    }
    const auto sent = Clock::now();
    bool unanswered = false;
    auto first = co_await script(kConnect, user_id, entry_ttl().count(), "open", &unanswered);
    if (first) refreshed(user_id, sent);
    if (!first && unanswered) {
      std::lock_guard lock(mutex_);
      unsure_online_.insert(user_id);
    }
    if (first == 1) co_await announcer_.announce(user_id, true, std::move(audience));
  }

  void shutting_down() override {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }

  // This node's entries linger for the grace period; the node that sweeps them records
  // and announces each user's going offline (the next node to start, when none is left).
  asio::awaitable<void> stopped() override { co_return; }

  asio::awaitable<void> disconnected(std::int64_t user_id) override {
    std::uint64_t ticket = 0;
    bool stopping = false;
    {
      std::lock_guard lock(mutex_);
      auto it = users_.find(user_id);
      if (it == users_.end()) co_return;
      report_sockets(-1, "add");
      if (--it->second.sockets > 0) co_return;
      ticket = ++it->second.ticket;
      stopping = stopping_;
    }
    co_await script(kLinger, user_id, options_.grace.count(), "");
    // A socket that opened while the linger was on its way: its entry must be live again.
    bool reconnected = false;
    {
      std::lock_guard lock(mutex_);
      auto it = users_.find(user_id);
      reconnected = it != users_.end() && it->second.sockets > 0;
    }
    if (reconnected) {
      // Announced offline meanwhile (another node's sweep found the linger expired): online
      // again.
      const auto sent = Clock::now();
      auto again = co_await script(kConnect, user_id, entry_ttl().count(), mode_for(user_id));
      if (again) refreshed(user_id, sent);
      if (again == 1) co_await announce_online(user_id);
      co_return;
    }
    // Stopping: the users reconnect elsewhere; if they do not, another node's sweep
    // announces them offline once the linger has expired.
    if (stopping) co_return;
    // A little past the linger, so the entry has expired when it is released.
    asio::steady_timer timer(co_await asio::this_coro::executor,
                             options_.grace + std::chrono::milliseconds(50));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    {
      std::lock_guard lock(mutex_);
      auto it = users_.find(user_id);
      if (it == users_.end() || it->second.ticket != ticket || it->second.sockets > 0) co_return;
      users_.erase(it);
      // Only refreshes of users with sockets here read it: the release below decides now.
      unsure_online_.erase(user_id);
    }
    co_await release(user_id);
  }

  asio::awaitable<users::OnlineCounts> counts() override {
    users::OnlineCounts n;
    std::vector<std::string> command{
        "EVAL", kTotals, "3", online_key(), socket_counts_key(), socket_expiries_key()};
    try {
      auto reply = co_await client_->command(std::move(command));
      if (reply.elements.size() == 2) {
        n.users = reply.elements[0].integer;
        n.sockets = reply.elements[1].integer;
      }
    } catch (const std::exception& e) {
      spdlog::warn("presence: reading counts from Redis failed: {}", e.what());
    }
    co_return n;
  }

  asio::awaitable<std::vector<bool>> online(std::vector<std::int64_t> ids) override {
    std::vector<bool> out(ids.size(), false);
    if (ids.empty()) co_return out;
    std::vector<std::string> command{"EVAL", kCount, std::to_string(ids.size())};
    for (auto id : ids) command.push_back(entries_key(id));
    try {
      auto reply = co_await client_->command(std::move(command));
      for (std::size_t i = 0; i < ids.size() && i < reply.elements.size(); ++i) {
        out[i] = reply.elements[i].integer > 0;
      }
    } catch (const std::exception& e) {
      spdlog::warn("presence: reading from Redis failed: {}", e.what());
    }
    co_return out;
  }

 private:
  struct User {
    int sockets = 0;
    std::uint64_t ticket = 0;
    // When the last connect for this user that went through was sent: Redis held this
    // node's entry, and the user as announced online, until at least a TTL after it.
    std::optional<Clock::time_point> refreshed;
  };

  void refreshed(std::int64_t user_id, Clock::time_point sent) {
    std::lock_guard lock(mutex_);
    if (auto it = users_.find(user_id); it != users_.end() && it->second.sockets > 0) {
      it->second.refreshed = sent;
    }
  }

  // "restore" while this node's entry for the user cannot have expired (so nobody can have
  // announced them offline): a missing state is then lost data, put back silently.
  const char* mode_for(const User& u) const {
    return u.refreshed && Clock::now() - *u.refreshed < entry_ttl() ? "restore" : "open";
  }
  const char* mode_for(std::int64_t user_id) {
    std::lock_guard lock(mutex_);
    auto it = users_.find(user_id);
    return it == users_.end() ? "open" : mode_for(it->second);
  }

  std::string entries_key(std::int64_t user) const {
    return options_.prefix + "p:" + std::to_string(user);
  }
  std::string state_key(std::int64_t user) const {
    return options_.prefix + "ps:" + std::to_string(user);
  }
  // How often the keep-alive sweeps; refreshes come every other sweep.
  std::chrono::milliseconds sweep_period() const { return options_.ttl / 6; }
  // How long an entry lives after a refresh: a dead node's entries expire within this,
  // and the next sweep finds them, so its users are offline within PRESENCE_TTL. A live
  // node refreshes twice within it, with a sixth of the TTL to spare.
  std::chrono::milliseconds entry_ttl() const { return options_.ttl - sweep_period(); }
  // How long the state key outlives the last refresh: past the entries' TTL and a
  // keep-alive missed, so whoever finds the entries expired still finds the state.
  std::chrono::milliseconds state_ttl() const { return 2 * options_.ttl + options_.grace; }
  std::string deadlines_key() const { return options_.prefix + "pd"; }
  std::string online_key() const { return options_.prefix + "po"; }
  std::string socket_counts_key() const { return options_.prefix + "pn"; }
  std::string socket_expiries_key() const { return node_expiries_key(options_.prefix); }

  // This node's socket count in Redis, moved by `value` ("add") or set to it ("set");
  // fire and forget, called under mutex_ so the moves reach Redis in order. The
  // keep-alive sets the true count again, which repairs what a Redis outage lost.
  void report_sockets(std::int64_t value, const char* mode) {
    client_->send({"EVAL", kSockets, "2", socket_counts_key(), socket_expiries_key(), node_,
                   std::to_string(value), std::to_string(options_.ttl.count()), mode});
  }

  // Runs one of the per-user scripts; nullopt when Redis cannot be reached (presence is
  // best-effort: the TTL and the keep-alive repair it). `unanswered` is set when the script
  // had gone to Redis and may still run there, its answer lost.
  asio::awaitable<std::optional<long long>> script(const char* lua, std::int64_t user, long long ms,
                                                   const char* mode, bool* unanswered = nullptr) {
    std::vector<std::string> command{"EVAL",
                                     lua,
                                     "4",
                                     entries_key(user),
                                     state_key(user),
                                     deadlines_key(),
                                     online_key(),
                                     node_,
                                     std::to_string(user),
                                     std::to_string(ms),
                                     std::to_string(state_ttl().count()),
                                     mode};
    std::optional<long long> result;
    try {
      auto reply = co_await client_->command(std::move(command));
      result = reply.integer;
    } catch (const redis::Unanswered& e) {
      spdlog::warn("presence: Redis call failed: {}", e.what());
      if (unanswered != nullptr) *unanswered = true;
    } catch (const std::exception& e) {
      spdlog::warn("presence: Redis call failed: {}", e.what());
    }
    std::lock_guard lock(mutex_);
    if (!result) {
      reachable_since_.reset();
    } else if (!reachable_since_) {
      reachable_since_ = Clock::now();
    }
    co_return result;
  }

  // Every third of the TTL extends this node's entries; every sixth releases the users of
  // nodes that stopped extending theirs. In between it looks at least once a second for
  // Redis coming back, which may have lost its data: the entries then go back at once
  // instead of at the next refresh, and releases an outage held back go out once Redis has
  // answered for kResubscribeWindow.
  asio::awaitable<void> keep_alive() {
    auto self = shared_from_this();
    asio::steady_timer timer(co_await asio::this_coro::executor);
    const auto step = std::min(sweep_period(), std::chrono::milliseconds(1000));
    auto next_sweep = Clock::now() + sweep_period();
    std::uint64_t connections = client_->connections();
    for (std::uint64_t tick = 0;;) {
      timer.expires_after(step);
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      {
        std::lock_guard lock(mutex_);
        if (stopped_) co_return;
      }
      if (const auto now_connections = client_->connections(); now_connections != connections) {
        connections = now_connections;
        {
          std::lock_guard lock(mutex_);
          if (!reachable_since_) reachable_since_ = Clock::now();  // it answered a PING
        }
        co_await refresh_entries();
      }
      co_await retry_releases();
      if (Clock::now() < next_sweep) continue;
      next_sweep = Clock::now() + sweep_period();
      if (tick++ % 2 == 1) co_await refresh_entries();
      while (co_await sweep() == kSweepBatch) {
      }
    }
  }

  // Extends this node's entries (and announces again whom an outage let expire).
  asio::awaitable<void> refresh_entries() {
    std::vector<std::pair<std::int64_t, const char*>> mine;  // (user, mode)
    {
      std::lock_guard lock(mutex_);
      std::int64_t sockets = 0;
      for (const auto& [id, u] : users_) {
        if (u.sockets > 0) mine.emplace_back(id, mode_for(u));
        sockets += u.sockets;
      }
      report_sockets(sockets, "set");
    }
    for (auto [id, mode] : mine) {
      // 1: the user was announced offline meanwhile (this node looked dead during an
      // outage), or was never announced (their connect failed): say it now. So too when
      // their connect went unanswered: it may have run later, its "announce" lost (a
      // repeated "online" is harmless, a missing one is not).
      const auto sent = Clock::now();
      bool unanswered = false;
      auto again = co_await script(kConnect, id, entry_ttl().count(), mode, &unanswered);
      if (again) refreshed(id, sent);
      bool was_unsure = false;
      {
        std::lock_guard lock(mutex_);
        if (again) {
          was_unsure = unsure_online_.erase(id) > 0;
        } else if (unanswered) {
          unsure_online_.insert(id);
        }
      }
      if (again == 1 || (again == 0 && was_unsure)) co_await announce_online(id);
    }
  }

  // The releases an outage held back, once Redis has answered long enough for the other
  // nodes to have resubscribed (so that they hear the announcement).
  asio::awaitable<void> retry_releases() {
    std::vector<std::int64_t> retry;
    {
      std::lock_guard lock(mutex_);
      if (!unreleased_.empty() && reachable_since_ &&
          Clock::now() - *reachable_since_ >= kResubscribeWindow) {
        retry.assign(unreleased_.begin(), unreleased_.end());
        unreleased_.clear();
      }
    }
    for (auto id : retry) co_await release(id);
  }

  // The user's last socket here closed a grace period ago: drops the expired entry and,
  // when nobody else has a socket of theirs, announces them offline. Tried again by the
  // keep-alive while Redis cannot be reached (else nobody would ever say it: the entries
  // may be lost with Redis's data), unless a socket of theirs opened here meanwhile.
  asio::awaitable<void> release(std::int64_t user) {
    {
      std::lock_guard lock(mutex_);
      if (auto it = users_.find(user); it != users_.end() && it->second.sockets > 0) co_return;
    }
    bool unanswered = false;
    auto gone = co_await script(kRelease, user, kOfflineStateTtl.count(), "", &unanswered);
    bool was_unsure = false;
    {
      std::lock_guard lock(mutex_);
      if (!gone) {
        unreleased_.insert(user);
        if (unanswered) unsure_offline_.insert(user);
      } else {
        was_unsure = unsure_offline_.erase(user) > 0;
      }
    }
    // 2: "offline" was already said, perhaps by this very release, run late with its answer
    // lost: say it (again) then.
    if (gone == 1 || (gone == 2 && was_unsure)) {
      try {
        co_await announcer_.went_offline(user, *this);
      } catch (const std::exception& e) {
        spdlog::warn("presence: announcing user {} offline failed: {}", user, e.what());
      }
    }
  }

  asio::awaitable<void> announce_online(std::int64_t user) {
    try {
      co_await announcer_.announce(user, true, std::nullopt);
    } catch (const std::exception& e) {
      spdlog::warn("presence: announcing user {} online failed: {}", user, e.what());
    }
  }

  // Releases up to kSweepBatch due entries; returns how many users it found due.
  asio::awaitable<std::size_t> sweep() {
    std::vector<std::string> command{"EVAL",
                                     kSweep,
                                     "1",
                                     deadlines_key(),
                                     options_.prefix,
                                     std::to_string(kSweepBatch),
                                     std::to_string(kOfflineStateTtl.count())};
    std::size_t due = 0;
    std::vector<std::int64_t> gone;
    try {
      auto reply = co_await client_->command(std::move(command));
      due = static_cast<std::size_t>(reply.elements.empty() ? 0 : reply.elements[0].integer);
      for (std::size_t i = 1; i < reply.elements.size(); ++i)
        gone.push_back(std::stoll(reply.elements[i].str));
    } catch (const std::exception& e) {
      spdlog::warn("presence: sweeping Redis failed: {}", e.what());
    }
    for (auto user : gone) {
      try {
        co_await announcer_.went_offline(user, *this);
      } catch (const std::exception& e) {
        spdlog::warn("presence: announcing user {} offline failed: {}", user, e.what());
      }
    }
    co_return due;
  }

  PresenceAnnouncer& announcer_;
  std::shared_ptr<redis::RedisClient> client_;
  RedisPresenceOptions options_;
  std::string node_;
  std::mutex mutex_;
  bool stopped_ = false;
  bool stopping_ = false;
  std::unordered_map<std::int64_t, User> users_;
  std::unordered_set<std::int64_t> unreleased_;  // releases that could not reach Redis
  // Users whose connect or release went to Redis unanswered (Redis may run it later, and
  // then nobody announces what it decided).
  std::unordered_set<std::int64_t> unsure_online_;
  std::unordered_set<std::int64_t> unsure_offline_;
  std::optional<Clock::time_point> reachable_since_;  // Redis has answered every call since
};

// The presence lives as long as its keep-alive loop may run; the handle stops the loop.
class RedisPresenceHandle final : public Presence {
 public:
  explicit RedisPresenceHandle(std::shared_ptr<RedisPresence> p) : p_(std::move(p)) {}
  ~RedisPresenceHandle() override { p_->stop(); }
  RedisPresenceHandle(const RedisPresenceHandle&) = delete;
  RedisPresenceHandle& operator=(const RedisPresenceHandle&) = delete;
  asio::awaitable<void> connected(std::int64_t user_id, std::optional<Audience> audience) override {
    co_await p_->connected(user_id, std::move(audience));
  }
  asio::awaitable<void> disconnected(std::int64_t user_id) override {
    co_await p_->disconnected(user_id);
  }
  asio::awaitable<std::vector<bool>> online(std::vector<std::int64_t> ids) override {
    co_return co_await p_->online(std::move(ids));
  }
  asio::awaitable<users::OnlineCounts> counts() override { co_return co_await p_->counts(); }
  void shutting_down() override { p_->shutting_down(); }
  asio::awaitable<void> stopped() override { return p_->stopped(); }

 private:
  std::shared_ptr<RedisPresence> p_;
};

}  // namespace

std::string new_node_id() {
  std::random_device rd;
  return std::to_string(rd()) + std::to_string(rd());
}

std::unique_ptr<Presence> make_redis_presence(const asio::any_io_executor& executor,
                                              PresenceAnnouncer& announcer,
                                              std::shared_ptr<redis::RedisClient> client,
                                              RedisPresenceOptions options) {
  auto p = std::make_shared<RedisPresence>(announcer, std::move(client), std::move(options));
  p->start(executor);
  return std::make_unique<RedisPresenceHandle>(std::move(p));
}

}  // namespace chat::realtime
