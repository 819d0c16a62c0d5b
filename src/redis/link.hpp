// One hiredis connection that keeps itself up: it resolves the host with Asio (hiredis would
// call getaddrinfo on the I/O thread), connects without blocking, and after a failed attempt
// or a lost connection tries again after a backoff (100 ms doubling to 2 s) until stop().
// RedisClient and RedisSubscriber build on it. Private to src/redis.
//
// A server that hangs (a frozen host, a stopped process, a network that drops packets)
// closes nothing, and hiredis has no timeouts of its own, so the link keeps two: a new
// connection counts as connected only once the server has answered a PING, within the
// connect timeout; and once connected, a server that stays silent for the reply timeout
// while the subclass awaits replies (awaiting_replies) is given up: the connection drops,
// which fails every pending reply and starts the reconnect loop. TCP keepalive finds a
// host or network that vanished while nothing was awaited (not a stopped process, whose
// kernel still answers).
//
// Every call into hiredis, and every virtual below, runs on the strand. The Link lives in a
// shared_ptr held by everything in flight (timers, socket waits), so it outlives them; the
// public objects call stop() when destroyed, which ends the reconnect loop and lets it go.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>

struct redisAsyncContext;

namespace chat::redis::detail {

class AsioAdapter;

class Link : public std::enable_shared_from_this<Link> {
 public:
  // `reply_timeout`: see awaiting_replies().
  Link(const boost::asio::any_io_executor& executor, std::string host, int port,
       std::chrono::milliseconds reply_timeout = std::chrono::seconds(2));
  virtual ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Any thread. start() after stop() does nothing: a stopped link stays stopped.
  void start();
  void stop();
  [[nodiscard]] bool connected() const { return connected_.load(); }
  [[nodiscard]] std::uint64_t connections() const { return connections_.load(); }
  [[nodiscard]] bool stopped() const { return stopped_.load(); }

  [[nodiscard]] const boost::asio::strand<boost::asio::any_io_executor>& strand() const {
    return strand_;
  }

 protected:
  // On the strand: the connected context, or null.
  [[nodiscard]] redisAsyncContext* context() const { return connected() ? ac_ : nullptr; }

  // On the strand, from inside hiredis callbacks: commands may be sent from them, but the
  // context must not be freed.
  virtual void on_connected() = 0;
  // Pending replies have already been failed by hiredis when this runs.
  virtual void on_lost() = 0;

  // For log lines.
  [[nodiscard]] std::string endpoint() const;

  // On the strand, connected: `count` replies were just asked for, or have come. Silence
  // for the reply timeout while any is awaited drops the connection.
  void awaiting_replies(std::size_t count);
  void replies_arrived(std::size_t count);

  // Calls a user callback unless stop() was called. An exception must not unwind through
  // hiredis's C frames: it is logged and dropped.
  template <class F, class... Args>
  void notify(const F& callback, Args&&... args) const {
    if (!callback || stopped()) return;
    try {
      callback(std::forward<Args>(args)...);
    } catch (const std::exception& e) {
      callback_failed(e.what());
    } catch (...) {
      callback_failed("unknown exception");
    }
  }

 private:
  static void handle_connect(const redisAsyncContext* ac, int status);
  static void handle_hello(redisAsyncContext* ac, void* reply, void* privdata);
  static void handle_disconnect(const redisAsyncContext* ac, int status);

  void connect();
  void connect_to(const boost::system::error_code& ec,
                  const boost::asio::ip::tcp::resolver::results_type& addresses);
  void connect_timed_out(unsigned attempt);
  void schedule_retry();
  void watch_replies();
  void replies_overdue();
  // Gives up on a connected server that stopped answering.
  void drop(const char* why);
  void close();
  void note_failure(const char* what, const char* detail);
  void callback_failed(const char* what) const;

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  std::string host_;
  int port_;
  boost::asio::ip::tcp::resolver resolver_;
  std::size_t next_address_ = 0;  // attempts go round the addresses a name has
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer connect_timer_;
  std::chrono::milliseconds reply_timeout_;
  boost::asio::steady_timer reply_timer_;
  std::size_t awaited_ = 0;  // replies asked for and not come yet
  // The last reply, or the first ask while none was awaited: silence is counted from it.
  std::chrono::steady_clock::time_point quiet_since_;
  bool reply_timer_armed_ = false;
  redisAsyncContext* ac_ = nullptr;  // the context being connected or connected
  std::shared_ptr<AsioAdapter> adapter_;
  std::chrono::milliseconds backoff_;
  unsigned attempt_ = 0;
  bool started_ = false;
  bool failing_ = false;  // a failure was logged and no connection succeeded since
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace chat::redis::detail
