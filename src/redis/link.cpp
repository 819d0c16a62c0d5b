#include "redis/link.hpp"

#include <hiredis/async.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <iterator>

#include "redis/asio_adapter.hpp"

namespace chat::redis::detail {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::chrono::milliseconds kFirstBackoff = 100ms;
constexpr std::chrono::milliseconds kMaxBackoff = 2s;
// redisAsyncConnect has no timeout of its own: an address that drops packets would hold an
// attempt for minutes of TCP retries.
constexpr std::chrono::milliseconds kConnectTimeout = 3s;

}  // namespace

Link::Link(const asio::any_io_executor& executor, std::string host, int port,
           std::chrono::milliseconds reply_timeout)
    : strand_(asio::make_strand(executor)),
      host_(std::move(host)),
      port_(port),
      resolver_(strand_),
      retry_timer_(strand_),
      connect_timer_(strand_),
      reply_timeout_(reply_timeout),
      reply_timer_(strand_),
      backoff_(kFirstBackoff) {}

// Normally stop() has run on the strand and there is no context left. If the I/O context was
// torn down first, the context is freed here with `data` cleared, so that no callback reaches
// a half-destroyed object.
Link::~Link() {
  if (ac_ != nullptr) {
    ac_->data = nullptr;
    redisAsyncFree(ac_);
  }
}

std::string Link::endpoint() const {
  return host_ + ":" + std::to_string(port_);
}

void Link::start() {
  asio::post(strand_, [self = shared_from_this()] {
    if (self->started_ || self->stopped()) return;
    self->started_ = true;
    self->connect();
  });
}

void Link::stop() {
  if (stopped_.exchange(true)) return;
  connected_ = false;  // commands fail at once from now on
  asio::post(strand_, [self = shared_from_this()] { self->close(); });
}

void Link::close() {
  connected_ = false;  // again: a connect may have completed since stop() cleared it
  resolver_.cancel();
  retry_timer_.cancel();
  connect_timer_.cancel();
  reply_timer_.cancel();
  awaited_ = 0;
  if (ac_ == nullptr) return;
  redisAsyncContext* ac = std::exchange(ac_, nullptr);
  // Cleared first: freeing runs the connect/disconnect callbacks of a deliberate close,
  // which must not schedule a reconnect or report a loss. Pending replies still complete
  // (with Unavailable) through their own private data.
  ac->data = nullptr;
  auto keep = adapter_;  // hiredis calls the cleanup hook while freeing
  redisAsyncFree(ac);
}

void Link::connect() {
  if (stopped()) return;
  resolver_.async_resolve(
      host_, std::to_string(port_), asio::ip::tcp::resolver::numeric_service,
      [self = shared_from_this()](const boost::system::error_code& ec,
                                  const asio::ip::tcp::resolver::results_type& addresses) {
        self->connect_to(ec, addresses);
      });
}

void Link::connect_to(const boost::system::error_code& ec,
                      const asio::ip::tcp::resolver::results_type& addresses) {
  if (stopped() || ec == asio::error::operation_aborted) return;
  if (ec || addresses.empty()) {
    note_failure("cannot resolve the host", ec ? ec.message().c_str() : "no address");
    schedule_retry();
    return;
  }
  auto it = addresses.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(next_address_++ % addresses.size()));
  const std::string address = it->endpoint().address().to_string();
  redisAsyncContext* ac = redisAsyncConnect(address.c_str(), port_);
  if (ac == nullptr) {
    note_failure("cannot connect", "out of memory");
    schedule_retry();
    return;
  }
  if (ac->err != 0) {
    note_failure("cannot connect", ac->errstr);
    redisAsyncFree(ac);  // no hooks yet: nothing is called back
    schedule_retry();
    return;
  }
  try {
    adapter_ = AsioAdapter::attach(ac, strand_);
  } catch (const std::exception& e) {
    note_failure("cannot watch the socket", e.what());
    redisAsyncFree(ac);
    schedule_retry();
    return;
  }
  // Lets the kernel find a peer that vanished while nothing was awaited (about 30 s).
  redisEnableKeepAlive(&ac->c);
  ac->data = this;
  ac_ = ac;
  redisAsyncSetDisconnectCallback(ac, &Link::handle_disconnect);
  // Waits for the socket to become writable: that is when the connect has finished.
  redisAsyncSetConnectCallback(ac, &Link::handle_connect);
  const unsigned attempt = ++attempt_;
  connect_timer_.expires_after(kConnectTimeout);
  connect_timer_.async_wait([self = shared_from_this(), attempt](boost::system::error_code ec) {
    if (!ec) self->connect_timed_out(attempt);
  });
}

void Link::connect_timed_out(unsigned attempt) {
  if (attempt != attempt_ || ac_ == nullptr || connected() || stopped()) return;
  note_failure("cannot connect", "timed out");
  redisAsyncContext* ac = std::exchange(ac_, nullptr);
  ac->data = nullptr;
  auto keep = adapter_;
  redisAsyncFree(ac);  // never reported connected: the callbacks find no link
  schedule_retry();
}

void Link::schedule_retry() {
  if (stopped()) return;
  retry_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  retry_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->connect();
  });
}

// One warning per outage, not one per attempt: attempts go on every 2 s.
void Link::note_failure(const char* what, const char* detail) {
  if (failing_) {
    spdlog::debug("redis {}: {}: {}", endpoint(), what, detail);
    return;
  }
  failing_ = true;
  spdlog::warn("redis {}: {}: {} (retrying)", endpoint(), what, detail);
}

void Link::callback_failed(const char* what) const {
  spdlog::error("redis {}: a callback threw: {}", endpoint(), what);
}

void Link::handle_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<Link*>(ac->data);
  if (self == nullptr) return;
  if (status != REDIS_OK) {
    self->connect_timer_.cancel();
    // hiredis frees the context right after this returns.
    self->note_failure("cannot connect", ac->c.errstr);
    self->ac_ = nullptr;
    self->schedule_retry();
    return;
  }
  // The kernel completes a TCP handshake for a server that is not running its loop: only an
  // answer shows it is. The connect timer keeps running until then.
  auto* context = const_cast<redisAsyncContext*>(ac);  // hiredis's callback type is const
  if (redisAsyncCommand(context, &Link::handle_hello, nullptr, "PING") != REDIS_OK) {
    self->note_failure("cannot connect", "PING not sent");
  }
}

// A PONG: the server is up. An error (a server still loading its data, one that wants a
// password or refuses this address) fails the attempt, which is tried again after the
// backoff: disconnecting here ends in handle_disconnect, as for an attempt that failed.
// Without a reply (the context being freed) nothing happens here.
void Link::handle_hello(redisAsyncContext* ac, void* r, void* /*privdata*/) {
  auto* self = static_cast<Link*>(ac->data);
  const auto* reply = static_cast<const redisReply*>(r);
  if (self == nullptr || reply == nullptr || self->stopped()) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    self->note_failure("cannot connect", std::string(reply->str, reply->len).c_str());
    redisAsyncDisconnect(ac);
    return;
  }
  self->connect_timer_.cancel();
  if (self->failing_) spdlog::info("redis {}: connected", self->endpoint());
  self->failing_ = false;
  self->backoff_ = kFirstBackoff;
  self->connected_ = true;
  ++self->connections_;
  self->on_connected();
}

void Link::awaiting_replies(std::size_t count) {
  if (count == 0) return;
  if (awaited_ == 0) quiet_since_ = std::chrono::steady_clock::now();
  awaited_ += count;
  watch_replies();
}

void Link::replies_arrived(std::size_t count) {
  awaited_ -= std::min(count, awaited_);
  quiet_since_ = std::chrono::steady_clock::now();
}

// The server is given up when it has been silent for the reply timeout while replies were
// awaited: not when a reply is merely that old, as a deep pipeline's last one may be while
// the server answers all the way. One timer, which sleeps again while replies come.
void Link::watch_replies() {
  if (reply_timer_armed_ || awaited_ == 0) return;
  reply_timer_armed_ = true;
  reply_timer_.expires_at(quiet_since_ + reply_timeout_);
  reply_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->reply_timer_armed_ = false;
    if (!ec) self->replies_overdue();
  });
}

void Link::replies_overdue() {
  if (stopped() || ac_ == nullptr || !connected() || awaited_ == 0) return;
  if (std::chrono::steady_clock::now() - quiet_since_ >= reply_timeout_) {
    const auto ms = std::to_string(reply_timeout_.count());
    drop(("no reply within " + ms + " ms").c_str());
    return;
  }
  watch_replies();
}

void Link::drop(const char* why) {
  redisAsyncContext* ac = std::exchange(ac_, nullptr);
  connected_ = false;
  awaited_ = 0;
  note_failure("connection given up", why);
  // As in close(): the link is told below, once, rather than from hiredis's callbacks.
  ac->data = nullptr;
  auto keep = adapter_;
  redisAsyncFree(ac);  // every pending reply fails now
  on_lost();
  schedule_retry();
}

// Runs while hiredis frees the context after a connection was established, whether the
// server went away or the connection broke.
void Link::handle_disconnect(const redisAsyncContext* ac, int /*status*/) {
  auto* self = static_cast<Link*>(ac->data);
  if (self == nullptr) return;
  self->ac_ = nullptr;
  self->awaited_ = 0;
  if (!self->connected()) {
    // Lost before the server answered the first PING: an attempt that failed.
    self->connect_timer_.cancel();
    self->note_failure("cannot connect", ac->c.err != 0 ? ac->c.errstr : "closed");
    self->schedule_retry();
    return;
  }
  self->connected_ = false;
  self->note_failure("connection lost", ac->c.err != 0 ? ac->c.errstr : "closed");
  self->on_lost();
  self->schedule_retry();
}

}  // namespace chat::redis::detail
