// Message traffic over user sockets, shared by the fan-out and ingest scenarios: opens a
// socket per user, sends paced (open loop) or windowed (closed loop) messages along
// routes, and checks that every socket got exactly what it should, in id order.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "api.hpp"
#include "histogram.hpp"
#include "scenario.hpp"

namespace chatbench {

struct Route {
  int sender = 0;         // index of the sending user (and socket)
  std::int64_t chat = 0;  // where it sends
  int recipients = 1;     // sockets that receive each message: all of them, or the sender
};

class Traffic {
 public:
  // One user socket per user; `chat_of[i]` is user i's only chat in the scenario.
  Traffic(const Options& o, std::vector<User> users, std::vector<std::int64_t> chat_of);

  asio::awaitable<void> open_sockets();
  // Warm-up, then o.runs runs of o.run_seconds; `route_rate` messages/s per route (0: as
  // fast as `o.window` messages in flight per route allow). Reports every run and the
  // delivery check.
  asio::awaitable<Report> measure(const std::vector<Route>& routes, double route_rate);

 private:
  struct Pending {
    Clock::time_point intended;
    int remaining = 0;
    int route = 0;
    int phase = 0;
  };
  struct Phase {
    std::uint64_t sent = 0;
    std::uint64_t completed = 0;
    std::uint64_t deliveries = 0;
    bool sending = true;
    Clock::time_point start, last_receipt;
    Histogram latency;
  };

  void receive(int socket, std::string_view payload, Clock::time_point at);
  void socket_closed(int code);
  void send(int route_index, Clock::time_point intended);
  asio::awaitable<void> pace(int route_index, double rate, Clock::time_point until);
  asio::awaitable<Report> run_phase(const std::vector<Route>& routes, double route_rate,
                                    bool warmup);

  const Options& o_;
  std::vector<User> users_;
  std::vector<std::int64_t> chat_of_;
  std::vector<std::shared_ptr<WsClient>> sockets_;
  std::vector<std::int64_t> last_id_;    // per socket: the newest message id seen
  std::vector<std::uint64_t> received_;  // per socket
  std::vector<std::uint64_t> own_expected_;
  std::uint64_t all_expected_ = 0;
  std::uint64_t out_of_order_ = 0;
  std::uint64_t unknown_ = 0;
  std::uint64_t closed_sockets_ = 0;
  std::vector<int> close_codes_;
  std::vector<Route> routes_;
  std::vector<int> in_flight_;
  std::vector<Pending> pending_;
  std::vector<Phase> phases_;
  std::string padding_;
  std::unique_ptr<asio::steady_timer> phase_done_;
};

}  // namespace chatbench
