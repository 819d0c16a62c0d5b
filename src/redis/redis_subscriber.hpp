// A Redis pub/sub connection on the Asio loop (hiredis underneath, kept out of this header).
//
// Thread-safe like RedisClient, and reconnects the same way; after each reconnect it
// subscribes again to every channel it holds before reporting ready. Messages published
// while the connection was down are lost: on_state(true) is the cue to catch up.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace chat::redis {

class RedisSubscriber : public std::enable_shared_from_this<RedisSubscriber> {
 public:
  using OnMessage = std::function<void(const std::string& channel, const std::string& payload)>;

  // `on_message` runs on the strand for every message on a held channel, in the order the
  // server sent them; it must not block.
  static std::shared_ptr<RedisSubscriber> create(boost::asio::any_io_executor executor,
                                                 std::string host, int port, OnMessage on_message);
  // Stops the connection (as stop()).
  ~RedisSubscriber();
  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  // Called on the strand with true on every (re)connect once all held channels are confirmed
  // subscribed, and with false when a connection that had been reported ready is lost. Set
  // it before start(); it must not block.
  void on_state(std::function<void(bool ready)> callback);

  // Begins connecting; returns at once.
  void start();
  // Closes for good; no callback starts after this returns (one already running may finish)
  // and `done` callbacks still waiting never run.
  void stop();

  // Adds channels. `done` (may be empty) runs on the strand once the server has confirmed
  // every one of them, at once if all are already confirmed. While disconnected the channels
  // are remembered and `done` runs after the reconnect confirms them. Channels are reference
  // counted: subscribe twice, unsubscribe twice.
  void subscribe(std::vector<std::string> channels, std::function<void()> done);
  // Drops one reference to each channel; the server is told when a count reaches zero.
  // Unknown channels are ignored.
  void unsubscribe(std::vector<std::string> channels);
  // Channels held now (reference count above zero), counting every call made so far.
  [[nodiscard]] std::size_t channel_count() const;

 private:
  class Impl;
  explicit RedisSubscriber(std::shared_ptr<Impl> impl);

  std::shared_ptr<Impl> impl_;
};

}  // namespace chat::redis
