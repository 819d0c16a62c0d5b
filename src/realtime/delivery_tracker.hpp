// Moves members' delivered watermarks when message events reach their sockets, coalesced:
// notes are gathered and written every `interval` in one transaction, one watermark write
// per member and chat however many messages arrived meanwhile.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace chat::store {
class Store;
}

namespace chat::realtime {

class DeliveryTracker {
 public:
  explicit DeliveryTracker(store::Store& store) : store_(store) {}

  // Thread-safe, cheap: called for every message queued on sockets, with their users.
  void note(std::int64_t chat_id, std::int64_t message_id, const std::vector<std::int64_t>& users);
  // Writes what has been noted; run forever by the server.
  boost::asio::awaitable<void> run(std::chrono::milliseconds interval);
  // Returns how many chats' watermarks could not be written for want of the database;
  // they are kept for the next flush.
  boost::asio::awaitable<std::size_t> flush();

 private:
  using Watermarks = std::unordered_map<std::int64_t, std::int64_t>;  // user -> message
  void requeue(std::int64_t chat_id, const Watermarks& users);

  store::Store& store_;
  std::string last_failure_;  // run()'s and flush()'s, one at a time
  std::mutex mutex_;
  // chat -> user -> the newest message id queued to them
  std::unordered_map<std::int64_t, Watermarks> pending_;
};

}  // namespace chat::realtime
