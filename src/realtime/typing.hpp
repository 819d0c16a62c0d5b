// Typing indicators: not stored, sent to the chat's other members, throttled (a refresh
// within a second is not re-sent), and ended by the server itself when no refresh comes
// for five seconds.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace chat::realtime {

class Broker;

class Typing {
 public:
  static constexpr int kExpirySeconds = 5;
  static constexpr int kRefreshMillis = 1000;

  Typing(Broker& broker, boost::asio::any_io_executor executor)
      : broker_(broker), executor_(std::move(executor)) {}
  ~Typing();

  // The caller has checked membership.
  void update(std::int64_t chat_id, std::int64_t user_id, const std::string& username,
              bool is_typing);

 private:
  struct State;
  void publish(std::int64_t chat_id, std::int64_t user_id, const std::string& username,
               bool is_typing);

  Broker& broker_;
  boost::asio::any_io_executor executor_;
  std::mutex mutex_;
  std::map<std::pair<std::int64_t, std::int64_t>, std::shared_ptr<State>> states_;
};

}  // namespace chat::realtime
