// The per-user socket limit in Redis. Each user with sockets has a sorted set of them,
// "<node>:<serial>" scored by the serial, which one counter hands out to every node in
// turn, so the lowest scores are the oldest sockets of the deployment. Opening a socket
// adds it in one script that also drops the sockets of nodes whose presence expired (a
// node that died cannot remove its own) and takes out the oldest past the limit; the node
// that opened it has those closed wherever they are. Closing a socket removes it.
#include <spdlog/spdlog.h>

#include <chrono>

#include "metrics/metrics.hpp"
#include "realtime/redis_keys.hpp"
#include "realtime/socket_limit.hpp"
#include "redis/redis_client.hpp"

namespace chat::realtime {
namespace {

namespace asio = boost::asio;

// How long a user's set outlives the last socket opened: long past any socket that closed
// without a word (its node died), which the next opening drops anyway.
constexpr std::chrono::hours kSetTtl{24 * 7};

// KEYS: the user's sockets, the serial counter, the nodes' presence expiries.
// ARGV: this node, the limit, the set's ttl ms, the presence ttl ms.
// Returns the new socket's serial, then the serials of the sockets to close. The node that
// opens a socket is alive, whatever its presence has written yet. A counter that is gone
// (Redis lost its data) starts past every serial handed out before, from the clock, so a
// socket still open from then is never taken for a new one.
constexpr const char* kOpen = R"lua(
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], now * 1000) end
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local node = string.sub(member, 1, string.find(member, ':', 1, true) - 1)
  if node ~= ARGV[1] then
    local alive = redis.call('ZSCORE', KEYS[3], node)
    if not alive or tonumber(alive) <= now then redis.call('ZREM', KEYS[1], member) end
  end
end
local serial = redis.call('INCR', KEYS[2])
-- Lua keeps numbers as doubles and writes large ones as 1.7e+15: the member spells it out.
redis.call('ZADD', KEYS[1], serial, ARGV[1] .. ':' .. string.format('%d', serial))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local out = {serial}
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
    redis.call('ZREM', KEYS[1], member)
    table.insert(out, tonumber(string.sub(member, string.find(member, ':', 1, true) + 1)))
  end
end
return out
)lua";

class RedisSocketLimit final : public SocketLimit {
 public:
  RedisSocketLimit(std::shared_ptr<redis::RedisClient> client, RedisSocketLimitOptions options,
                   std::function<void(const SessionEnd&)> evict)
      : client_(std::move(client)), options_(std::move(options)), evict_(std::move(evict)) {}

  asio::awaitable<std::optional<std::int64_t>> opened(std::int64_t user_id) override {
    std::vector<std::string> command{"EVAL",
                                     kOpen,
                                     "3",
                                     sockets_key(user_id),
                                     options_.prefix + "sks",
                                     node_expiries_key(options_.prefix),
                                     options_.node,
                                     std::to_string(options_.max_sockets_per_user),
                                     std::to_string(kSetTtl.count() * 3'600'000),
                                     std::to_string(options_.presence_ttl.count())};
    redis::Reply reply;
    try {
      reply = co_await client_->command(std::move(command));
    } catch (const std::exception& e) {
      spdlog::warn("socket limit: Redis call failed, this node counts alone: {}", e.what());
      co_return std::nullopt;
    }
    if (reply.elements.empty() || reply.elements[0].integer <= 0) co_return std::nullopt;
    SessionEnd end{user_id, 1008, "too many sockets"};
    for (std::size_t i = 1; i < reply.elements.size(); ++i) {
      end.sockets.push_back(reply.elements[i].integer);
    }
    if (!end.sockets.empty()) {
      metrics::metrics().throttled.with({"ws_sockets"}).inc(end.sockets.size());
      evict_(end);
    }
    co_return reply.elements[0].integer;
  }

  asio::awaitable<bool> counted(std::int64_t user_id, std::int64_t serial) override {
    std::vector<std::string> command{"ZSCORE", sockets_key(user_id), member(serial)};
    bool counted = true;  // when Redis cannot tell, it stays
    try {
      auto reply = co_await client_->command(std::move(command));
      counted = reply.type != redis::Reply::Type::nil;
    } catch (const std::exception& e) {
      spdlog::warn("socket limit: Redis call failed: {}", e.what());
    }
    co_return counted;
  }

  void closed(std::int64_t user_id, std::int64_t serial) override {
    client_->send({"ZREM", sockets_key(user_id), member(serial)});
  }

 private:
  std::string member(std::int64_t serial) const {
    return options_.node + ":" + std::to_string(serial);
  }
  std::string sockets_key(std::int64_t user_id) const {
    return options_.prefix + "sk:" + std::to_string(user_id);
  }

  std::shared_ptr<redis::RedisClient> client_;
  RedisSocketLimitOptions options_;
  std::function<void(const SessionEnd&)> evict_;
};

}  // namespace

std::unique_ptr<SocketLimit> make_redis_socket_limit(std::shared_ptr<redis::RedisClient> client,
                                                     RedisSocketLimitOptions options,
                                                     std::function<void(const SessionEnd&)> evict) {
  return std::make_unique<RedisSocketLimit>(std::move(client), std::move(options),
                                            std::move(evict));
}

}  // namespace chat::realtime
