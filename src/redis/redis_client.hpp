// A Redis command connection on the Asio loop (hiredis underneath, kept out of this header).
//
// Thread-safe: every public method may be called from any thread; internally all hiredis
// calls run on one strand of the given executor. The connection comes back by itself after
// a loss (backoff 100 ms doubling to 2 s, forever, until stop()), and counts as connected
// once the server has answered a PING. Commands are pipelined:
// many may be in flight on the one connection, and replies come back in order.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "redis/redis_reply.hpp"

namespace chat::redis {

class RedisClient : public std::enable_shared_from_this<RedisClient> {
 public:
  // A reply not received within `reply_timeout` (Redis answers in well under a
  // millisecond, so a late one means a server that hangs) fails every command in flight
  // with Unavailable and reconnects: nothing that waits on Redis, such as a login's
  // throttle count or a socket handshake, waits longer. Blocking commands (BLPOP and kin)
  // need a timeout longer than theirs.
  static std::shared_ptr<RedisClient> create(
      boost::asio::any_io_executor executor, std::string host, int port,
      std::chrono::milliseconds reply_timeout = std::chrono::seconds(2));
  // Stops the connection (as stop()).
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Begins connecting; returns at once.
  void start();
  // Closes for good; pending commands fail with Unavailable and no callback starts after
  // this returns (one already running may finish).
  void stop();
  [[nodiscard]] bool connected() const;
  // How many times a connection came up so far: a change tells of a reconnect (after which
  // Redis may have lost its data).
  [[nodiscard]] std::uint64_t connections() const;

  // Sends one command (binary-safe arguments, e.g. {"SET", "k", "v"}). Throws Unavailable at
  // once when not connected (commands are not queued while disconnected) or when the
  // connection drops before the reply; throws ReplyError for an error reply (errors nested
  // in an array reply stay elements of type error). Completes on the caller's executor.
  // Throws std::invalid_argument for an empty command, or for one that would switch the
  // connection into pub/sub or monitor mode (SUBSCRIBE and kin, MONITOR): replies would no
  // longer match commands, and RedisSubscriber is there for that.
  boost::asio::awaitable<Reply> command(std::vector<std::string> args);

  // Fire and forget (e.g. PUBLISH): the reply is ignored; silently dropped when not
  // connected (and, like command(), when empty or a pub/sub or monitor command).
  void send(std::vector<std::string> args);

  // Called on the strand after every successful (re)connect with true, and with false after
  // every loss of an established connection (not for failed attempts, nor for stop()). Set
  // it before start(); it must not block.
  void on_state(std::function<void(bool connected)> callback);

 private:
  class Impl;
  explicit RedisClient(std::shared_ptr<Impl> impl);

  std::shared_ptr<Impl> impl_;
};

}  // namespace chat::redis
