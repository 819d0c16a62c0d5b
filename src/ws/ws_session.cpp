#include "ws/ws_session.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>

#include "chat/wire.hpp"
#include "realtime/client_events.hpp"
#include "realtime/hub.hpp"
#include "realtime/presence.hpp"
#include "store/store.hpp"

namespace chat::ws {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kSubscribeWait = std::chrono::seconds(3);

realtime::Frame frame_of(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

class Socket final : public realtime::Session, public std::enable_shared_from_this<Socket> {
 public:
  Socket(beast::tcp_stream stream, Admission admission, RealtimeContext& context)
      : ws_(std::move(stream)), admission_(std::move(admission)), context_(context) {}

  std::int64_t user_id() const override { return admission_.user.id; }
  std::int64_t chat_id() const override { return admission_.chat_id; }

  void deliver(const realtime::Frame& frame, std::int64_t seq) override {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    if (buffering_) {
      buffered_.emplace_back(seq, frame);
      return;
    }
    if (seq != 0 && seq <= replayed_through_) return;  // the replay already sent it
    enqueue_locked(frame);
  }

  void close(int code, const std::string& reason) override {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    close_code_ = code;
    close_reason_ = reason;
    start_writer_locked();
  }

  asio::awaitable<void> run(beast::http::request<beast::http::string_body> request) {
    auto self = shared_from_this();
    // Counted until the coroutine ends, so shutdown can wait for the last goodbye.
    struct Running {
      std::atomic<int>& n;
      explicit Running(std::atomic<int>& c) : n(c) { ++n; }
      ~Running() { --n; }
      Running(const Running&) = delete;
      Running& operator=(const Running&) = delete;
    } running(context_.sessions_running);
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts{std::chrono::seconds(10), context_.limits.idle_timeout,
                                             true};
    ws_.set_option(timeouts);
    ws_.read_message_max(context_.limits.max_frame_bytes);
    const std::string subprotocol = admission_.subprotocol;
    ws_.set_option(websocket::stream_base::decorator([subprotocol](websocket::response_type& res) {
      res.set(beast::http::field::server, "chatd");
      if (!subprotocol.empty()) res.set(beast::http::field::sec_websocket_protocol, subprotocol);
    }));
    // Registered before the upgrade completes, with live events held aside, so nothing
    // committed between the handshake and the first read is missed.
    const std::int64_t user = user_id();
    // Where the event log stands before the chats are read: the broker delivers everything
    // after it, so a chat created meanwhile is not missed.
    std::unordered_map<std::int64_t, realtime::UnreadState> chats;
    std::optional<std::int64_t> from_seq;
    bool unavailable = false;
    try {
      from_seq = co_await context_.store.chats().newest_seq();
      if (is_user_socket()) {
        auto summaries = co_await context_.store.chats().summaries(user);
        for (const auto& s : summaries) chats[s.chat.id] = {s.last_read_message_id, s.unread_count};
      } else {
        chats[chat_id()] = {};
      }
    } catch (const store::Unavailable&) {
      unavailable = true;  // answered below: no co_await in a handler
    }
    if (unavailable) {
      co_await refuse(request, beast::http::status::service_unavailable,
                      R"({"detail":"Service temporarily unavailable."})", "database unavailable");
      co_return;
    }
    buffering_ = true;
    // Waits (briefly: the log replay covers a slow broker) until this node hears the chats,
    // so a resume cannot fall between the replay and the live events.
    auto subscribed = std::make_shared<asio::steady_timer>(ws_.get_executor(), kSubscribeWait);
    auto on_ready = [subscribed] {
      asio::post(subscribed->get_executor(), [subscribed] { subscribed->cancel(); });
    };
    for (const auto& evicted : context_.hub.attach(self, chats, from_seq, on_ready))
      evicted->close(1008, "too many sockets");
    co_await subscribed->async_wait(use_tuple);
    // An account deactivated after the gate admitted it: its "end the sessions" message may
    // have gone out before this node listened for the user, so look again now that it does.
    if (!co_await still_active(user)) {
      context_.hub.detach(this);
      co_await refuse(request, beast::http::status::unauthorized,
                      R"({"detail":"User is inactive","code":"user_inactive"})", "user inactive");
      co_return;
    }
    auto [ec] = co_await ws_.async_accept(request, use_tuple);
    if (ec) {
      context_.hub.detach(this);
      co_return;
    }
    ws_.text(true);
    {
      std::lock_guard lock(mutex_);
      accepted_ = true;  // writes may start now
      if (!queue_.empty() || close_code_ != 0) start_writer_locked();
    }
    spdlog::info("ws open user={} chat={} resume={}", user, chat_id(),
                 admission_.since ? "yes" : "no");
    // Whatever ends the session (the client, or the database failing under the presence
    // announcement or the replay), it leaves the hub and presence behind it.
    bool failed = false;
    try {
      co_await context_.presence.connected(user);
      co_await replay(admission_.since);
      co_await read_loop();
    } catch (const std::exception& e) {
      failed = true;
      spdlog::warn("ws user={} chat={} ended by an error: {}", user, chat_id(), e.what());
    }
    if (failed) close(1013, "try again later");

    context_.hub.detach(this);
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    try {
      co_await context_.presence.disconnected(user);
    } catch (const std::exception& e) {
      spdlog::warn("ws user={} presence not updated: {}", user, e.what());
    }
    spdlog::info("ws closed user={} chat={}", user, chat_id());
  }

 private:
  // Sends the log after `since`, then `synced`, then whatever arrived live meanwhile that
  // the replay did not already carry: no gap and no duplicate at the seam. Without
  // `since`, only releases what arrived during the handshake.
  asio::awaitable<void> replay(std::optional<std::int64_t> since) {
    std::int64_t cursor = 0;
    if (since) {
      cursor = *since;
      // Pages no bigger than half the send queue, each sent once the queue has room: a
      // long replay is not a slow reader.
      const int page_size =
          static_cast<int>(std::clamp<std::size_t>(context_.limits.max_queued_frames / 2, 1, 500));
      asio::steady_timer pause(ws_.get_executor());
      for (;;) {
        while (queued() > context_.limits.max_queued_frames / 2) {
          pause.expires_after(std::chrono::milliseconds(5));
          co_await pause.async_wait(use_tuple);
          if (is_closed()) co_return;
        }
        auto page = co_await context_.store.chats().replay(user_id(), cursor, page_size);
        if (page.resync_required) {
          enqueue(frame_of(R"({"type":"resync_required"})"));
          cursor = page.last_seq;
          break;
        }
        for (const auto& e : page.events) {
          enqueue(frame_of(boost::json::serialize(chats::event_for_viewer(e, user_id()))));
        }
        cursor = std::max(cursor, page.last_seq);
        if (!page.has_more) break;
      }
    }
    std::lock_guard lock(mutex_);
    if (since)
      enqueue_locked(frame_of("{\"type\":\"synced\",\"seq\":" + std::to_string(cursor) + "}"));
    replayed_through_ = cursor;
    buffering_ = false;
    for (auto& [seq, frame] : buffered_) {
      if (seq == 0 || seq > cursor) enqueue_locked(frame);
    }
    buffered_.clear();
  }

  // Refused before the socket is open: a plain HTTP answer, as REST would give.
  asio::awaitable<void> refuse(const beast::http::request<beast::http::string_body>& req,
                               beast::http::status status, const char* body, const char* why) {
    beast::http::response<beast::http::string_body> res{status, req.version()};
    res.set(beast::http::field::content_type, "application/json");
    res.set(beast::http::field::server, "chatd");
    res.body() = body;
    res.prepare_payload();
    res.keep_alive(false);
    co_await beast::http::async_write(ws_.next_layer(), res, use_tuple);
    spdlog::warn("ws user={} refused: {}", user_id(), why);
  }

  // False when the account is gone or inactive; true when the database cannot tell (the
  // session goes on, as it would have without the check).
  asio::awaitable<bool> still_active(std::int64_t user) {
    try {
      auto account = co_await context_.store.users().find_by_id(user);
      co_return account && account->is_active;
    } catch (const store::Unavailable&) {
      co_return true;
    }
  }

  std::size_t queued() {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

  bool is_closed() {
    std::lock_guard lock(mutex_);
    return closed_;
  }

  asio::awaitable<void> read_loop() {
    beast::flat_buffer buffer;
    realtime::ClientContext ctx{admission_.user, chat_id()};
    double tokens = context_.limits.burst;
    auto last = std::chrono::steady_clock::now();
    bool ignoring = false;
    for (;;) {
      auto [ec, n] = co_await ws_.async_read(buffer, use_tuple);
      if (ec) {
        if (ec == websocket::error::message_too_big)
          spdlog::info("ws user={} frame too big", user_id());
        break;
      }
      const std::string text = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      if (ignoring) continue;
      // Token bucket: 30 events a second, bursts of 60 (settings); past that, the socket
      // is abusive and is closed with 1008.
      const auto now = std::chrono::steady_clock::now();
      tokens = std::min(context_.limits.burst,
                        tokens + std::chrono::duration<double>(now - last).count() *
                                     context_.limits.events_per_second);
      last = now;
      if (tokens < 1) {
        close(1008, "rate limit exceeded");
        ignoring = true;
        continue;
      }
      tokens -= 1;
      if (!ws_.got_text()) {
        enqueue(frame_of(
            R"({"type":"error","code":"bad_request","detail":"Send text frames.","request_type":null})"));
        continue;
      }
      try {
        auto replies = co_await context_.events.handle(ctx, text);
        for (auto& reply : replies) enqueue(frame_of(std::move(reply)));
      } catch (const std::exception& e) {
        spdlog::error("ws event failed for user {}: {}", user_id(), e.what());
        enqueue(frame_of(
            R"({"type":"error","code":"unavailable","detail":"Service temporarily unavailable.","request_type":null})"));
      }
    }
  }

  void enqueue(const realtime::Frame& frame) {
    std::lock_guard lock(mutex_);
    enqueue_locked(frame);
  }

  void enqueue_locked(const realtime::Frame& frame) {
    if (closed_) return;
    if (queue_.size() >= context_.limits.max_queued_frames) {
      // A slow reader must not hold memory or anyone else: it is cut off.
      closed_ = true;
      queue_.clear();
      spdlog::warn("ws user={} too slow: {} frames queued, closing", user_id(),
                   context_.limits.max_queued_frames);
      asio::post(ws_.get_executor(), [self = shared_from_this()] {
        beast::error_code ignored;
        beast::get_lowest_layer(self->ws_).socket().close(ignored);
      });
      return;
    }
    queue_.push_back(frame);
    start_writer_locked();
  }

  void start_writer_locked() {
    if (writing_ || !accepted_) return;
    writing_ = true;
    // Posted, not dispatched: co_spawn may start the loop inline, and it takes the lock
    // this caller holds.
    asio::post(ws_.get_executor(), [self = shared_from_this()] {
      asio::co_spawn(self->ws_.get_executor(), self->write_loop(), asio::detached);
    });
  }

  // One write in flight; the rest wait in the queue.
  asio::awaitable<void> write_loop() {
    auto self = shared_from_this();
    for (;;) {
      realtime::Frame next;
      int code = 0;
      std::string reason;
      {
        std::lock_guard lock(mutex_);
        if (queue_.empty()) {
          if (!closed_ || close_code_ == 0 || close_sent_) {
            writing_ = false;
            co_return;
          }
          close_sent_ = true;
          code = close_code_;
          reason = close_reason_;
        } else {
          next = queue_.front();
          queue_.pop_front();
        }
      }
      if (next) {
        auto [ec, n] = co_await ws_.async_write(asio::buffer(*next), use_tuple);
        if (ec) {
          std::lock_guard lock(mutex_);
          closed_ = true;
          queue_.clear();
          writing_ = false;
          co_return;
        }
      } else {
        websocket::close_reason cr(static_cast<websocket::close_code>(code), reason);
        co_await ws_.async_close(cr, use_tuple);
      }
    }
  }

  websocket::stream<beast::tcp_stream> ws_;
  Admission admission_;
  RealtimeContext& context_;
  std::mutex mutex_;
  std::deque<realtime::Frame> queue_;
  bool writing_ = false;
  bool accepted_ = false;  // the handshake is done
  bool closed_ = false;    // nothing more is queued
  int close_code_ = 0;     // a close frame to send once the queue is drained
  std::string close_reason_;
  bool close_sent_ = false;
  bool buffering_ = false;
  std::vector<std::pair<std::int64_t, realtime::Frame>> buffered_;
  std::int64_t replayed_through_ = 0;
};

}  // namespace

asio::awaitable<void> run_socket(beast::tcp_stream stream,
                                 beast::http::request<beast::http::string_body> request,
                                 Admission admission, RealtimeContext& context) {
  auto socket = std::make_shared<Socket>(std::move(stream), std::move(admission), context);
  co_await socket->run(std::move(request));
}

}  // namespace chat::ws
