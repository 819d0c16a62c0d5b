#include "ws/ws_session.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <climits>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>

#include "chat/replay_views.hpp"
#include "chat/wire.hpp"
#include "common/log_event.hpp"
#include "common/unicode.hpp"
#include "http/beast_response.hpp"
#include "http/drf.hpp"
#include "http/request_log.hpp"
#include "metrics/metrics.hpp"
#include "realtime/client_events.hpp"
#include "realtime/hub.hpp"
#include "realtime/presence.hpp"
#include "realtime/socket_limit.hpp"
#include "store/store.hpp"
#include "ws/frame_codec.hpp"
#include "ws/held_order.hpp"
#include "ws/keepalive.hpp"

namespace chat::ws {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kSubscribeWait = std::chrono::seconds(3);
// How long a closing socket waits for the peer's close frame before dropping the connection.
constexpr auto kCloseWait = std::chrono::seconds(5);
// At most this many frames go into one write, and at most kMaxBuffers buffers: a header
// and a payload each (a split frame's payload is two), with the backlog and control
// frames. Past IOV_MAX (1024 on Linux) sendmsg fails outright.
constexpr std::size_t kMaxBatch = 500;
constexpr std::size_t kMaxBuffers = 1024;
#ifdef IOV_MAX
static_assert(kMaxBuffers <= IOV_MAX);
#endif
// Reads land in a buffer of the thread's; a socket keeps bytes of its own only while a
// frame is incomplete or a message is being answered.
constexpr std::size_t kReadChunk = std::size_t{64} * 1024;
// A socket's leftover bytes are released once this much room is no longer needed.
constexpr std::size_t kKeepPending = 1024;
// Written frames' slots are dropped from the front of a queue that has not emptied once
// there are this many (and they are at least half of it).
constexpr std::size_t kCompactAfter = 256;
// A replay reads the log in pages of at most kReplayPage events, starting with
// kReplayFirstPage, and then of about kReplayPageBytes of frames (a page is held in
// memory while it is sent).
constexpr std::size_t kReplayPage = 500;
constexpr int kReplayFirstPage = 20;
constexpr std::size_t kReplayPageBytes = std::size_t{1} << 20;

realtime::Frame frame_of(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

// A frame waiting to be written: its text and, for a frame made for this recipient out of
// a shared part (Session::queue_split), the recipient's own part that follows it.
struct Queued {
  realtime::Frame text;
  realtime::Frame tail;  // may be null

  [[nodiscard]] std::size_t size() const { return text->size() + (tail ? tail->size() : 0); }
  explicit operator bool() const { return text != nullptr; }
  void reset() {
    text.reset();
    tail.reset();
  }
};

const char* kind_of(std::int64_t chat) {
  return chat == 0 ? "user" : "chat";
}

// The close code as a metric label. The codes RFC 6455 defines are few, and the server
// sends only those and 4003; a client may pick any of 3000-4999, and each as a label of its
// own would be a series that never goes away (two thousand a client could make at will).
std::string close_code_label(int code) {
  return code < 3000 || code == 4003 ? std::to_string(code) : "other";
}

// A socket's line of the log: its event, who, and the upgrade request that opened it.
logs::Event socket_event(const char* name, const Admission& a) {
  logs::Event e(name);
  e.field("request_id", a.request_id)
      .field("user", a.user.id)
      .field("kind", kind_of(a.chat_id))
      .field("chat", a.chat_id);
  return e;
}

// After the last socket closes: presence (which may wait out a grace period) without
// holding the socket's memory or descriptor meanwhile.
asio::awaitable<void> goodbye(RealtimeContext& context, std::int64_t user) {
  try {
    co_await context.presence.disconnected(user);
  } catch (const std::exception& e) {
    spdlog::warn("ws user={} presence not updated: {}", user, e.what());
  }
}

// One WebSocket connection. Its life: a setup coroutine reads what the session needs,
// registers it with the hub, answers the upgrade and replays; then no coroutine is left
// running while it idles. Reads are a wait for readability and a non-blocking read into
// the thread's buffer (on the socket's strand); writes are non-blocking writev from any
// thread under mutex_ (write_locked); pings and the idle timeout come from the node's
// keep-alive sweep. So an idle socket holds no read buffer, no timer and no coroutine.
class Socket final : public realtime::Session,
                     public KeepAlive::Watched,
                     public std::enable_shared_from_this<Socket> {
 public:
  Socket(beast::tcp_stream stream, Admission admission, RealtimeContext& context)
      : executor_(stream.get_executor()),
        handshake_(std::move(stream)),
        socket_(executor_),
        admission_(std::move(admission)),
        context_(context),
        limiter_{context.limits.burst, Clock::now()} {
    ++context_.sessions_running;
    // The session needs the account's id and name; its secrets stay out of memory.
    admission_.user.password_hash = {};
  }
  // The connection was counted open by the HTTP session that handed it over.
  ~Socket() override {
    --context_.sessions_running;
    metrics::metrics().connections_open.add(-1);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  [[nodiscard]] const asio::any_io_executor& executor() const { return executor_; }
  std::int64_t user_id() const override { return admission_.user.id; }
  std::int64_t chat_id() const override { return admission_.chat_id; }
  const std::string& login_session() const override { return admission_.session; }
  std::int64_t socket_serial() const override { return socket_serial_; }

  void deliver(const realtime::Frame& frame, std::int64_t seq, std::int64_t state) override {
    if (queue(frame, seq, state)) schedule_flush();
  }

  bool queue(const realtime::Frame& frame, std::int64_t seq, std::int64_t state) override {
    return queue_frame({frame, nullptr}, seq, state);
  }

  bool queue_split(const realtime::Frame& head, const realtime::Frame& tail,
                   std::int64_t seq) override {
    return queue_frame({head, tail}, seq, 0);
  }

  bool queue_frame(const Queued& frame, std::int64_t seq, std::int64_t state) {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    if (buffering_) {
      // Held while the replay runs, and a replay waits for a peer that reads: live events
      // held for one that reads nothing count against the same limits as the queue.
      if (past_limits_locked(buffered_.size(), buffered_weight_, frame)) {
        cut_off_locked("held", buffered_.size(), buffered_weight_);
        buffered_ = {};
        buffered_weight_ = 0;
        return false;
      }
      buffered_weight_ += weight_of(frame);
      buffered_.push_back({seq, state, frame});
      return false;
    }
    if (seq != 0 && seq <= replayed_through_) return false;  // the replay already sent it
    return enqueue_state_locked(frame, state);
  }

  void flush() override {
    std::lock_guard lock(mutex_);
    flush_due_ = false;
    write_locked();
  }

  void close(int code, const std::string& reason) override {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    close_code_ = code;
    close_reason_ = reason;
    kick_locked();
  }

  // A ping after half the idle timeout without a byte from the peer, and the connection
  // dropped after the whole of it.
  bool keepalive(Clock::time_point now) override {
    const auto idle = std::chrono::duration_cast<Clock::duration>(context_.limits.idle_timeout);
    const Clock::time_point heard_at{Clock::duration{last_heard_.load(std::memory_order_relaxed)}};
    std::lock_guard lock(mutex_);
    if (dropped_ || close_done_) return false;
    // A close frame that cannot go out (the peer reads nothing, and its queue is ahead of
    // the frame) would keep the socket, its queue and its descriptor for as long as the
    // peer keeps sending: an evicted socket no longer counts against the per-user limit.
    // Whatever is still unsent kCloseWait after the close began, the connection ends.
    if (closed_ && close_code_ != 0) {
      if (!closing_seen_at_) {
        closing_seen_at_ = now;
      } else if (now - *closing_seen_at_ >= kCloseWait) {
        socket_event("socket.drop", admission_)
            .field("reason", "close not taken")
            .field("code", close_code_)
            .info();
        clear_queue();
        drop_connection();
        return false;
      }
    }
    if (now - heard_at >= idle) {
      socket_event("socket.drop", admission_)
          .field("reason", "idle")
          .field("idle_s", static_cast<std::int64_t>(
                               std::chrono::duration_cast<std::chrono::seconds>(idle).count()))
          .info();
      closed_ = true;
      clear_queue();
      drop_connection();
      return false;
    }
    if (now - heard_at >= idle / 2 && pinged_for_ != heard_at && !close_sent_) {
      pinged_for_ = heard_at;  // one ping per silence
      control_ += server_frame(Opcode::ping, "");
      kick_locked();
    }
    return true;
  }

  // Everything up to the first read: what the session needs from the store, the hub, the
  // upgrade, presence and the replay. Refusals are plain HTTP answers.
  asio::awaitable<void> start(beast::http::request<beast::http::string_body> request) {
    auto self = shared_from_this();
    handshake_->expires_never();
    // The upgrade refuses any version but 13 (RFC 6455 4.4): refused here, before the
    // socket counts among the user's (a handshake bound to fail would close their oldest
    // socket at the limit) or joins the hub.
    if (const auto version = request[beast::http::field::sec_websocket_version]; version != "13") {
      http::Response answer =
          version.empty()
              ? http::Response::json(400, R"({"detail":"Missing Sec-WebSocket-Version header."})")
              : http::Response::json(426, R"({"detail":"Unsupported WebSocket version."})");
      if (!version.empty()) answer.headers.emplace_back("Sec-WebSocket-Version", "13");
      co_await refuse(request, std::move(answer), "websocket version");
      co_return;
    }
    const std::int64_t user = user_id();
    // Registered before the upgrade completes, with live events held aside, so nothing
    // committed between the handshake and the first read is missed.
    auto subscribed = std::make_shared<asio::steady_timer>(executor_);  // set at the attach
    // A user socket reads all the user's chats anyway: its presence announcement needs no
    // reads of its own (a chat socket's does).
    std::optional<realtime::Audience> audience;
    {
      // Where the event log stands before the chats are read: the broker delivers
      // everything after it, so a chat created meanwhile is not missed.
      std::unordered_map<std::int64_t, realtime::UnreadState> chats;
      std::optional<std::int64_t> from_seq;
      bool unavailable = false;
      try {
        if (is_user_socket()) {
          auto states = co_await context_.store.chats().read_states(user, std::nullopt);
          from_seq = states.seq;
          audience.emplace();
          audience->last_seen = admission_.user.last_seen;
          chats = unread_states(states);
          for (const auto& s : states.chats) audience->chat_ids.push_back(s.chat_id);
        } else {
          // Its chat's read state too: its chat_updated frames carry it.
          auto states = co_await context_.store.chats().read_states(user, chat_id());
          from_seq = states.seq;
          realtime::UnreadState& state = chats[chat_id()];
          state.as_of = states.seq;
          if (!states.chats.empty()) {  // else no longer a member: refused after the attach
            state.last_read = states.chats.front().last_read_message_id;
            state.unread = states.chats.front().unread_count;
          }
        }
      } catch (const store::Unavailable&) {
        unavailable = true;  // answered below: no co_await in a handler
      }
      if (unavailable) {
        co_await refuse(request, http::error_response(Error::unavailable()),
                        "database unavailable");
        co_return;
      }
      // Counted among the user's sockets of the whole deployment, whose oldest past the
      // limit close; when that count cannot be reached, among this node's only.
      bool node_limit = true;
      if (context_.socket_limit != nullptr) {
        auto serial = co_await context_.socket_limit->opened(user);
        if (serial) {
          socket_serial_ = *serial;
          node_limit = false;
        }
      }
      buffering_ = true;
      // Waits (briefly: the log replay covers a slow broker) until this node hears the
      // chats, so a resume cannot fall between the replay and the live events. Counted
      // from here: counted from before the reads above, a database answering slowly left
      // no wait at all, and the socket sent newer live events before the older ones its
      // node was still reading.
      subscribed->expires_after(kSubscribeWait);
      auto on_ready = [subscribed] {
        asio::post(subscribed->get_executor(), [subscribed] { subscribed->cancel(); });
      };
      opened_at_seq_ = from_seq.value_or(0);
      for (const auto& evicted : context_.hub.attach(self, chats, from_seq, on_ready, node_limit)) {
        metrics::metrics().throttled.with({"ws_sockets"}).inc();
        evicted->close(1008, "too many sockets");
      }
    }
    co_await subscribed->async_wait(use_tuple);
    subscribed.reset();
    // An account deactivated, or a session logged out, after the gate admitted the token:
    // its "close the sockets" message may have gone out before this node listened for the
    // user, so look again now that it does.
    if (auto problem = co_await still_admitted()) {
      leave_hub();
      co_await refuse(request, http::error_response(*problem), problem->code.c_str());
      co_return;
    }
    // Likewise a membership change heard between the read of the user's chats and the
    // attach: it moved none of this socket's subscriptions (a chat left would go on being
    // heard), so the chats it may concern are read again. (A chat socket's membership is
    // looked at again above.)
    if (is_user_socket()) {
      auto unsure = context_.hub.membership_heard_since(user, opened_at_seq_);
      bool settled = true;
      if (!unsure || !unsure->empty()) settled = co_await settle_chats(unsure);
      if (!settled) {
        leave_hub();
        auto answer = http::error_response(Error::unavailable());
        co_await refuse(request, std::move(answer), "database unavailable");
        co_return;
      }
    }
    // Closed past the limit before this node heard the user (or while it was opening on
    // this node): no one else will tell it, so it goes as the limit says.
    if (socket_serial_ != 0 && !co_await context_.socket_limit->counted(user, socket_serial_)) {
      close(1008, "too many sockets");
    }
    auto [ec] = co_await upgrade(request);
    if (ec) {
      // The client went away (or broke the handshake) before the answer: nginx's 499.
      record_upgrade(499, 0);
      leave_hub();
      co_return;
    }
    record_upgrade(101, 0);
    request = {};  // the session outlives the request: its fields go now
    // From here the socket is framed here; Beast's stream and its timers go.
    socket_ = handshake_->release_socket();
    handshake_.reset();
    heard();
    bool cut_off = false;
    {
      std::lock_guard lock(mutex_);
      // Cut off as a slow reader while opening (closed without a close code): its drop may
      // have run before the connection was the session's, closing nothing, and a dropped
      // session is never written to or swept, so it would hold its place in the hub for as
      // long as the peer kept the connection open.
      cut_off = closed_ && close_code_ == 0;
      if (cut_off) {
        beast::error_code ignored;
        socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
      } else {
        accepted_ = true;  // writes may start now
        if (!queue_empty() || close_code_ != 0) kick_locked();
      }
    }
    if (cut_off) {
      leave_hub();
      co_return;
    }
    context_.keepalive.watch(self);
    opened_at_ = Clock::now();
    auto& m = metrics::metrics();
    m.sockets.with({kind_of(chat_id())}).add(1);
    m.sockets_opened.with({kind_of(chat_id())}).inc();
    counted_open_ = true;
    socket_event("socket.open", admission_)
        .field("client", admission_.client_address)
        .field("resume", admission_.since.has_value())
        .info();
    // Whatever ends the session (the client, or the database failing under the presence
    // announcement or the replay), it leaves the hub and presence behind it.
    bool failed = false;
    try {
      presence_joined_ = true;  // from here its end tells presence it left
      co_await context_.presence.connected(user, std::move(audience));
      co_await replay(admission_.since);
    } catch (const std::exception& e) {
      failed = true;
      socket_event("socket.error", admission_).field("error", e.what()).warn();
    }
    if (failed) {
      close(1013, "try again later");
      end_session(false);
      co_return;
    }
    read_more();
  }

  // start() ended with an exception it did not expect (a store error other than the
  // database being away, say): the session leaves the hub and presence's count, and its
  // connection ends, instead of staying attached, and counted, with nobody to close it.
  void abandon(const std::exception_ptr& error) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    socket_event("socket.error", admission_).field("error", what).warn();
    if (accepted_) {  // after the upgrade: the session ends as when its peer goes
      end_session(true);
      return;
    }
    leave_hub();
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      clear_queue();
    }
    if (handshake_) {  // not upgraded: answered (and logged) as REST's unexpected errors are
      asio::co_spawn(executor_, answer_failure(shared_from_this()), asio::detached);
      return;
    }
    beast::error_code ignored;
    socket_.close(ignored);
  }

 private:
  // Sends the log after `since`, then `synced`, then whatever arrived live meanwhile that
  // the replay did not already carry: no gap and no duplicate at the seam. Without
  // `since`, only releases what arrived during the handshake.
  asio::awaitable<void> replay(std::optional<std::int64_t> since) {
    // Without `since`, the client loads its state through REST, which holds everything up
    // to where the log stood when this socket read its chats: an event at or below that
    // seq reaching it later (a node catching up after a broker outage) is old news.
    std::int64_t cursor = opened_at_seq_;
    std::set<std::int64_t> recounted;  // chats whose replayed events may change my unread count
    if (since) {
      cursor = *since;
      // The `unread` frame that follows an event went out after it, in the same write or
      // (a count read from the store) later: a connection cut between them lost the count,
      // and the replay, after `since`, does not carry the event again. Its chat is counted
      // again after the replay, as a replayed event's is. The first page is read from one
      // seq earlier to see that event (a read of its own cost a reconnect a second replay).
      bool resuming_from_event = *since > 0;
      // Each frame goes once the send queue has room for it within half of what a socket
      // may hold, in frames and in bytes (a larger frame, once the queue is empty): a long
      // replay is not a slow reader, whatever its events' size.
      // Pages hold about kReplayPageBytes: events naming a chat's thousands of members
      // (chat_updated) come fewer at a time than messages do.
      const int most = static_cast<int>(
          std::clamp<std::size_t>(context_.limits.max_queued_frames / 2, 1, kReplayPage));
      int page_size = std::min(most, kReplayFirstPage);
      asio::steady_timer pause(executor_);
      for (;;) {
        if (is_closed()) co_return;  // cut off, or evicted: nothing more to read for it
        auto page = co_await replay_page(cursor, page_size, resuming_from_event, recounted);
        resuming_from_event = false;
        if (page.resync_required) {
          enqueue(frame_of(R"({"type":"resync_required"})"));
          cursor = page.last_seq;
          break;
        }
        const auto views =
            co_await chats::replay_views(context_.store.chats(), user_id(), page.events);
        std::size_t bytes = 0;
        for (const auto& e : page.events) {
          const auto view = chats::event_for_viewer(e, user_id(), &views);
          std::string text = boost::json::serialize(view);
          const bool open = co_await wait_for_room(pause, false, text.size());
          if (!open) co_return;
          if (changes_my_unread(e.type, view)) recounted.insert(e.chat_id);
          bytes += text.size();
          enqueue(frame_of(std::move(text)));
        }
        if (!page.events.empty()) {
          page_size = store::replay_read_size(bytes, page.events.size(), kReplayPageBytes,
                                              static_cast<std::size_t>(most));
        }
        if (is_closed()) co_return;  // its frames were dropped: nothing was delivered
        for (const auto& [chat, message] : chats::delivered_by_replay(page.events, user_id())) {
          context_.hub.note_delivered(chat, message, user_id());
        }
        cursor = page.last_seq;  // below `since` when that was ahead of the log
        if (!page.has_more) break;
      }
      // What was held meanwhile (up to the socket's limits) goes out once the replay's
      // frames are written: on top of them, it could pass the limits.
      const bool open = co_await wait_for_room(pause, true);
      if (!open) co_return;
    }
    // A count held for a chat the user left meanwhile (queued before the hub knew: the
    // removal came in the replay, or the hub heard it after the count was read) would
    // follow the replay's member_removed or chat_deleted, as if the chat were back. The
    // hub is asked outside this session's lock, as it queues through it under its own;
    // counts held after the question are queued only for chats the hub still counts.
    std::vector<std::int64_t> held_counts;
    {
      std::lock_guard lock(mutex_);
      for (const auto& held : buffered_) {
        if (held.state != 0) held_counts.push_back(held.state);
      }
    }
    std::vector<std::int64_t> left;
    if (!held_counts.empty()) left = context_.hub.not_counted(this, std::move(held_counts));
    {
      std::lock_guard lock(mutex_);
      bool kick = false;
      if (since) {
        kick |= enqueue_locked(
            {frame_of("{\"type\":\"synced\",\"seq\":" + std::to_string(cursor) + "}"), nullptr});
      }
      replayed_through_ = cursor;
      buffering_ = false;
      in_seq_order(buffered_);
      for (const auto& held : buffered_) {
        if (held.state != 0 && std::find(left.begin(), left.end(), held.state) != left.end()) {
          continue;
        }
        if (held.seq == 0 || held.seq > cursor)
          kick |= enqueue_state_locked(held.frame, held.state, true);
      }
      buffered_ = {};
      buffered_weight_ = 0;
      if (kick) schedule_flush();
    }
    // Live `unread` frames went out only for what arrived while connected: the counts the
    // replay changed follow it, after anything live they might otherwise overtake. Outside
    // this session's lock: the hub queues them through it, under its own.
    if (!recounted.empty()) {
      context_.hub.announce_unread(this, {recounted.begin(), recounted.end()});
    }
  }

  // A page of the replay from `cursor`. The first page of a resume (`resuming_from_event`)
  // is read from one seq earlier: the event at `cursor`, the one the client resumes from,
  // if it is the user's, is taken out of the page and its chat counted again when it
  // changes the user's count. A log pruned through `cursor` is read again from `cursor`,
  // which is still a valid place to resume from.
  asio::awaitable<store::Replay> replay_page(std::int64_t cursor, int page_size,
                                             bool resuming_from_event,
                                             std::set<std::int64_t>& recounted) {
    auto& chats = context_.store.chats();
    if (!resuming_from_event) co_return co_await chats.replay(user_id(), cursor, page_size);
    auto page = co_await chats.replay(user_id(), cursor - 1, page_size);
    if (page.resync_required) co_return co_await chats.replay(user_id(), cursor, page_size);
    if (!page.events.empty() && page.events.front().seq == cursor) {
      const auto& e = page.events.front();
      boost::system::error_code bad;
      const auto payload = boost::json::parse(e.payload, bad);
      if (!bad && payload.is_object() && changes_my_unread(e.type, payload.get_object())) {
        recounted.insert(e.chat_id);
      }
      page.events.erase(page.events.begin());
    }
    co_return page;
  }

  // A message (someone else's raises the count, one's own clears it), one's own read, a
  // deletion (for everyone, or for oneself), joining a chat (new, or again: the client may
  // still show the count from before it left).
  bool changes_my_unread(const std::string& type, const boost::json::object& view) const {
    if (type == "message" || type == "delete" || type == "chat_created") return true;
    if (type != "read") return false;
    const auto* reader = view.if_contains("user_id");
    return reader != nullptr && reader->is_int64() && reader->get_int64() == user_id();
  }

  // Beast does the upgrade only (with a handshake timeout), on a stream that borrows the
  // socket: after it, this class frames, pings and times out the socket itself.
  asio::awaitable<std::tuple<beast::error_code>> upgrade(
      const beast::http::request<beast::http::string_body>& request) {
    websocket::stream<beast::tcp_stream&> ws(*handshake_);
    websocket::stream_base::timeout timeouts{std::chrono::seconds(10),
                                             websocket::stream_base::none(), false};
    ws.set_option(timeouts);
    const std::string subprotocol = admission_.subprotocol;
    ws.set_option(websocket::stream_base::decorator([subprotocol](websocket::response_type& res) {
      res.set(beast::http::field::server, "chatd");
      if (!subprotocol.empty()) res.set(beast::http::field::sec_websocket_protocol, subprotocol);
    }));
    co_return co_await ws.async_accept(request, use_tuple);
  }

  // The upgrade request's answer when opening failed unexpectedly (abandon): 500, as REST
  // answers an unexpected error, then the connection ends. (The parameter keeps the
  // session alive while the answer is written.)
  static asio::awaitable<void> answer_failure(std::shared_ptr<Socket> self) {
    beast::http::request<beast::http::string_body> upgrade;  // only its version is used
    upgrade.version(11);
    co_await self->refuse(upgrade,
                          http::Response::json(500, R"({"detail":"A server error occurred."})"),
                          "server error");
    beast::error_code ignored;
    self->handshake_->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    self->handshake_->socket().close(ignored);
  }

  // Refused before the socket is open: a plain HTTP answer, written as REST's are.
  asio::awaitable<void> refuse(const beast::http::request<beast::http::string_body>& req,
                               http::Response answer, const char* why) {
    const int status = answer.status;
    const std::size_t bytes = answer.body.size();
    auto res =
        http::to_beast(std::move(answer), req.version(), false, false, admission_.request_id);
    co_await beast::http::async_write(*handshake_, res, use_tuple);
    record_upgrade(status, bytes);
    socket_event("socket.refused", admission_).field("status", status).field("reason", why).warn();
  }

  // The upgrade request's line and metrics, once it is answered.
  void record_upgrade(int status, std::size_t bytes) const {
    const http::RequestOutcome outcome{admission_.request_id,
                                       admission_.client_address,
                                       "GET",
                                       admission_.path,
                                       http::socket_route(admission_.path),
                                       status,
                                       bytes,
                                       admission_.received_at};
    http::record_request(outcome);
  }

  // Why the token admitted at the gate no longer holds (the account gone or inactive, the
  // session ended), or nullopt; nullopt too when the database cannot tell (the session goes
  // on, as it would have without the check).
  asio::awaitable<std::optional<Error>> still_admitted() {
    try {
      auto admitted = co_await context_.gate.still_admitted(admission_);
      if (!admitted) co_return std::move(admitted).error();
    } catch (const store::Unavailable&) {
    }
    co_return std::nullopt;
  }

  static std::unordered_map<std::int64_t, realtime::UnreadState> unread_states(
      const store::ReadStates& states) {
    std::unordered_map<std::int64_t, realtime::UnreadState> out;
    for (const auto& s : states.chats) {
      out[s.chat_id] = {
          .last_read = s.last_read_message_id, .unread = s.unread_count, .as_of = states.seq};
    }
    return out;
  }

  // Reads the user's chats again and sets the socket's subscriptions of `which` (all, with
  // nullopt) from them, then waits (as the first subscription did, at most kSubscribeWait)
  // until the node hears the chats joined and has what they had since the read: held with
  // the live events, they go out in one seq order (replay). False when the database cannot
  // tell.
  asio::awaitable<bool> settle_chats(const std::optional<std::vector<std::int64_t>>& which) {
    std::optional<store::ReadStates> states;
    try {
      states = co_await context_.store.chats().read_states(user_id(), std::nullopt);
    } catch (const store::Unavailable&) {
      co_return false;
    }
    auto caught_up = std::make_shared<asio::steady_timer>(executor_, kSubscribeWait);
    auto on_ready = [caught_up] {
      asio::post(caught_up->get_executor(), [caught_up] { caught_up->cancel(); });
    };
    context_.hub.settle(shared_from_this(), unread_states(*states), states->seq, which, on_ready);
    co_await caught_up->async_wait(use_tuple);
    co_return true;
  }

  // Waits while the queue has no room for a frame of `next` bytes within half of its limits
  // (replay_must_wait), or with `empty` while it holds anything at all. A client's pongs are read
  // once the replay is done: one that takes in the replay is not idle, however long that takes on a
  // slow link. False when the socket closed meanwhile.
  asio::awaitable<bool> wait_for_room(asio::steady_timer& pause, bool empty, std::size_t next = 0) {
    for (std::size_t before = queued_bytes();
         empty ? queued_bytes() > 0 : replay_must_wait(next);) {
      pause.expires_after(std::chrono::milliseconds(5));
      co_await pause.async_wait(use_tuple);
      if (is_closed()) co_return false;
      const std::size_t now = queued_bytes();
      if (now < before) heard();
      before = now;
    }
    co_return true;
  }

  // Whether a replay's next frame, of `next` bytes, must wait for the reader to catch up:
  // the queue holds half of what a socket may have queued in frames, or has no room for it
  // within half of the bytes. A frame larger than that half waits for an empty queue (on top
  // of a queue up to half full, it could pass the limit and cut the socket off).
  bool replay_must_wait(std::size_t next) {
    std::lock_guard lock(mutex_);
    return queue_size() > context_.limits.max_queued_frames / 2 ||
           (queued_bytes_ > 0 && queued_bytes_ + next > context_.limits.max_queued_bytes / 2);
  }

  std::size_t queued_bytes() {
    std::lock_guard lock(mutex_);
    return queued_bytes_;
  }

  bool is_closed() {
    std::lock_guard lock(mutex_);
    return closed_;
  }

  // --- Reading (on the strand) ---

  void wait_readable() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->end_session(true);
        return;
      }
      self->read_more();
    });
  }

  // A client message taken off the socket.
  struct Message {
    std::string text;
    bool is_text = true;
  };

  // Reads what the kernel holds until it has no more (then waits for more: the reactor
  // reports only new bytes), or until a message goes to the services (reading resumes
  // once it is answered, so one socket's events are handled in order, one at a time).
  void read_more() {
    thread_local std::string chunk(kReadChunk, '\0');
    while (reading_) {
      const ssize_t n = ::recv(socket_.native_handle(), chunk.data(), chunk.size(), MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wait_readable();
        return;
      }
      if (n <= 0) {  // the peer is gone (or the descriptor was closed under us)
        end_session(true);
        return;
      }
      heard();
      // After a protocol error the rest of the bytes cannot be trusted: they are read and
      // dropped until the peer goes, so the close frame is not lost to a reset.
      if (discarding_) continue;
      pending_.append(chunk.data(), static_cast<std::size_t>(n));
      if (auto message = next_message()) {
        // Started here, so the message reaches the services without a trip through the
        // scheduler; nothing below touches the read state once it has started.
        auto executor = executor_;
        asio::co_spawn(executor, answer(std::move(message->text), message->is_text),
                       asio::detached);
        return;
      }
    }
  }

  // Takes frames off pending_ up to the next complete message: pings get pongs, a close
  // frame ends the session (answered, unless it answers ours). nullopt when there is no
  // complete message (read more), or reading is over.
  std::optional<Message> next_message() {
    std::size_t pos = 0;
    std::optional<Message> out;
    while (!out && !discarding_) {
      auto parsed = parse_client_frame(pending_.data() + pos, pending_.size() - pos,
                                       context_.limits.max_frame_bytes);
      if (parsed.close_code != 0) {
        fail(parsed.close_code, parsed.close_code == 1009 ? "message too big" : "protocol error");
        break;
      }
      if (!parsed.frame) break;
      const ClientFrame frame = *parsed.frame;
      pos += frame.size;
      switch (frame.opcode) {
        case Opcode::ping:
          send_pong(frame.payload);
          continue;
        case Opcode::pong:
          continue;
        case Opcode::close:
          peer_closed(close_code_of(frame.payload));
          pending_ = {};
          end_session(false);
          return std::nullopt;
        case Opcode::text:
        case Opcode::binary:
          if (in_message_) {
            fail(1002, "protocol error");
            continue;
          }
          in_message_ = true;
          text_message_ = frame.opcode == Opcode::text;
          message_.assign(frame.payload);
          break;
        case Opcode::continuation:
          if (!in_message_) {
            fail(1002, "protocol error");
            continue;
          }
          message_.append(frame.payload);
          break;
      }
      if (message_.size() > context_.limits.max_frame_bytes) {
        fail(1009, "message too big");
        continue;
      }
      if (!frame.fin) continue;
      in_message_ = false;
      if (text_message_ && !unicode::is_valid_utf8(message_)) {
        fail(1007, "invalid UTF-8");
        continue;
      }
      out = Message{std::exchange(message_, {}), text_message_};
    }
    if (discarding_) {
      pending_ = {};
    } else {
      pending_.erase(0, pos);
      if (pending_.empty() && pending_.capacity() > kKeepPending) pending_ = {};
    }
    return out;
  }

  // Client messages through the services one at a time, as long as complete ones are
  // buffered; then reading goes on (posted: a flood of messages answered at once does not
  // nest calls).
  asio::awaitable<void> answer(std::string text, bool is_text) {
    auto self = shared_from_this();
    for (;;) {
      co_await on_message(text, is_text);
      auto next = next_message();
      if (!next) break;
      text = std::move(next->text);
      is_text = next->is_text;
    }
    if (reading_) asio::post(executor_, [self] { self->read_more(); });
  }

  // Token bucket: 30 events a second, bursts of 60 (settings).
  struct Limiter {
    double tokens;
    Clock::time_point last;
    bool ignoring = false;
  };

  asio::awaitable<void> on_message(const std::string& text, bool is_text) {
    metrics::metrics().socket_frames_received.inc();
    // Closing (a shutdown, an eviction, a removal): what the client still sends is not
    // acted on. Its answer could not go out after the close frame, and a message stored
    // without one would be sent again, by client_id, once the client is back.
    if (is_closed()) co_return;
    Limiter& limiter = limiter_;
    if (limiter.ignoring) co_return;
    // Past the rate limit the socket is abusive and is closed with 1008.
    const auto now = Clock::now();
    limiter.tokens =
        std::min(context_.limits.burst,
                 limiter.tokens + std::chrono::duration<double>(now - limiter.last).count() *
                                      context_.limits.events_per_second);
    limiter.last = now;
    if (limiter.tokens < 1) {
      metrics::metrics().throttled.with({"ws_events"}).inc();
      close(1008, "rate limit exceeded");
      limiter.ignoring = true;
      co_return;
    }
    limiter.tokens -= 1;
    if (!is_text) {
      enqueue(frame_of(
          R"({"type":"error","code":"bad_request","detail":"Send text frames.","request_type":null})"));
      co_return;
    }
    realtime::ClientContext ctx{admission_.user, chat_id()};
    try {
      auto replies = co_await context_.events.handle(ctx, text);
      for (auto& reply : replies) enqueue(frame_of(std::move(reply)));
    } catch (const std::exception& e) {
      socket_event("socket.event_failed", admission_).field("error", e.what()).warn();
      enqueue(frame_of(
          R"({"type":"error","code":"unavailable","detail":"Service temporarily unavailable.","request_type":null})"));
    }
  }

  // Leaves the hub, and the deployment's count of the user's sockets.
  void leave_hub() {
    context_.hub.detach(this);
    if (socket_serial_ != 0)
      context_.socket_limit->closed(user_id(), std::exchange(socket_serial_, 0));
  }

  // The session leaves the hub and presence once its reading is over (strand). When the
  // peer is gone the descriptor goes at once; otherwise the close exchange ends it.
  void end_session(bool peer_gone) {
    if (!reading_) return;
    reading_ = false;
    leave_hub();
    int code = 0;  // the close code exchanged, 0 when the connection just ended
    {
      std::lock_guard lock(mutex_);
      code = close_code_;
      closed_ = true;
      if (peer_gone) {
        // Nothing more can be said to it: a close frame under way ends the connection as
        // soon as it is out, and without one the connection ends now.
        peer_closed_ = true;
        if (close_code_ == 0 || close_done_) {
          clear_queue();
          drop_connection();
        }
      }
    }
    // Undone only what was done: a session that ended between the upgrade and its
    // counting (abandon) was neither counted open nor told to presence.
    if (std::exchange(counted_open_, false)) {
      auto& m = metrics::metrics();
      m.sockets.with({kind_of(chat_id())}).add(-1);
      m.sockets_closed.with({kind_of(chat_id()), close_code_label(code)}).inc();
    }
    socket_event("socket.close", admission_)
        .field("code", code)
        .field("duration_ms",
               static_cast<std::int64_t>(
                   std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - opened_at_)
                       .count()))
        .info();
    if (std::exchange(presence_joined_, false)) {
      asio::co_spawn(executor_, goodbye(context_, user_id()), asio::detached);
    }
  }

  // The peer sent its close frame: ours (the same code) goes out now and ends the
  // connection once written, or the exchange it answers is complete.
  void peer_closed(int code) {
    std::lock_guard lock(mutex_);
    peer_closed_ = true;
    if (close_sent_) {
      // Ours is out: the exchange is complete. (Still being written: the connection ends
      // once it is, as peer_closed_ now says.)
      if (close_done_) {
        if (close_timer_) close_timer_->cancel();
        drop_connection();
      }
      return;
    }
    if (!closed_ || close_code_ == 0) {
      closed_ = true;
      clear_queue();
      close_code_ = code == 0 ? 1002 : (code == 1005 ? 1000 : code);
      close_reason_.clear();
    }
    kick_locked();
  }

  // A protocol error, an invalid message or one too big: the close frame goes out at once
  // (before anything queued), the connection ends after it, and what the peer still sends
  // is dropped.
  void fail(int code, const char* why) {
    socket_event("socket.fail", admission_).field("reason", why).field("code", code).info();
    discarding_ = true;
    std::lock_guard lock(mutex_);
    clear_queue();
    if (!closed_ || close_code_ == 0) {
      closed_ = true;
      close_code_ = code;
      close_reason_ = why;
    }
    kick_locked();
  }

  // One pong waits at a time, for the newest ping (RFC 6455 5.5.3 allows it): a client
  // that sends pings and reads nothing would otherwise have its pongs pile up here without
  // bound, as pings are not events and are not rate-limited.
  void send_pong(std::string_view payload) {
    std::lock_guard lock(mutex_);
    if (close_sent_) return;
    pong_ = server_frame(Opcode::pong, payload);
    kick_locked();
  }

  void heard() {
    last_heard_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  }

  // Ends the TCP connection. Posted, so it runs on the strand (where the reads are
  // started), and under mutex_, so no write is in the middle of using the descriptor.
  void drop_connection() {
    asio::post(executor_, [self = shared_from_this()] {
      std::lock_guard lock(self->mutex_);
      self->dropped_ = true;
      beast::error_code ignored;
      auto& socket = self->socket_;
      socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
    });
  }

  // A newer state frame with this key is queued: the one still waiting to be written (if
  // any) is dropped, and the writer skips its empty place.
  void supersede_locked(std::int64_t state) {
    auto it = std::find_if(states_.begin(), states_.end(),
                           [state](const auto& s) { return s.first == state; });
    if (it == states_.end()) return;
    if (it->second >= queue_head_ && it->second < queue_.size() && queue_[it->second]) {
      queued_bytes_ -= queue_[it->second].size();
      queued_weight_ -= weight_of(queue_[it->second]);
      queue_[it->second].reset();
    }
    states_.erase(it);
  }

  [[nodiscard]] bool queue_empty() const { return queue_head_ == queue_.size(); }
  [[nodiscard]] std::size_t queue_size() const { return queue_.size() - queue_head_; }
  void clear_queue() {
    queue_.clear();
    queue_head_ = 0;
    queued_bytes_ = 0;
    queued_weight_ = 0;
    states_.clear();
  }
  // The first `n` queued frames are written: their payloads may go.
  void pop_frames(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      auto& frame = queue_[queue_head_ + i];
      if (frame) {
        queued_bytes_ -= frame.size();
        queued_weight_ -= weight_of(frame);
      }
      frame.reset();
    }
    queue_head_ += n;
    if (queue_empty()) {
      // After a burst an idle socket keeps no large queue.
      if (queue_.capacity() > 64) {
        queue_ = {};
      } else {
        queue_.clear();
      }
      queue_head_ = 0;
      states_.clear();
    } else if (queue_head_ >= kCompactAfter && queue_head_ >= queue_size()) {
      // A queue that never quite empties (a busy socket always a frame or two behind)
      // would keep a slot for every frame it ever wrote: the written ones go once they
      // are at least half of it, and the state frames' places move with the rest.
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(queue_head_));
      std::erase_if(states_, [this](const auto& s) { return s.second < queue_head_; });
      for (auto& s : states_) s.second -= queue_head_;
      queue_head_ = 0;
    }
  }

  void enqueue(const realtime::Frame& frame) {
    bool kick = false;
    {
      std::lock_guard lock(mutex_);
      kick = enqueue_locked({frame, nullptr});
    }
    if (kick) schedule_flush();
  }

  // What a frame counts toward WS_MAX_QUEUED_BYTES: its size, but at most half of it. One
  // event larger than the limit (a chat naming thousands of members, under a small setting)
  // is not a slow reader: counted whole it cut the socket off each time, a replay holding
  // it on every reconnect, and so did any frame queued behind it before it was written. A
  // reader falling behind still reaches the limit, with at most two such frames waiting.
  [[nodiscard]] std::size_t weight_of(const Queued& frame) const {
    return std::min(frame.size(), context_.limits.max_queued_bytes / 2);
  }

  // Whether one more frame takes `frames` frames of `weight` waiting (queued, or held while
  // the socket opens) past the slow-reader limits.
  [[nodiscard]] bool past_limits_locked(std::size_t frames, std::size_t weight,
                                        const Queued& frame) const {
    return frames >= context_.limits.max_queued_frames ||
           weight + weight_of(frame) > context_.limits.max_queued_bytes;
  }

  // A slow reader must not hold memory or anyone else: it is cut off and its queue dropped.
  // `what` names the frames that reached the limit ("queued" or "held").
  void cut_off_locked(const std::string& what, std::size_t frames, std::size_t bytes) {
    socket_event("socket.drop", admission_)
        .field("reason", "too slow")
        .field(what, static_cast<std::uint64_t>(frames))
        .field(what + "_bytes", static_cast<std::uint64_t>(bytes))
        .warn();
    closed_ = true;
    clear_queue();
    drop_connection();
  }

  // True when the caller must see to a flush (schedule_flush, or the hub's batch).
  // `admitted`: frames held while the socket opened, which passed the same limits then.
  bool enqueue_locked(const Queued& frame, bool admitted = false) {
    if (closed_) return false;
    // Frames or bytes: many small events, or fewer large ones (a text of control
    // characters is six bytes of JSON each), pin as much memory.
    if (!admitted && past_limits_locked(queue_size(), queued_weight_, frame)) {
      cut_off_locked("queued", queue_size(), queued_bytes_);
      return false;
    }
    queued_bytes_ += frame.size();
    queued_weight_ += weight_of(frame);
    queue_.push_back(frame);
    return claim_flush_locked();
  }

  // enqueue_locked for a frame that may be a state (`state` != 0): it replaces the one with
  // the same key still waiting to be written.
  bool enqueue_state_locked(const Queued& frame, std::int64_t state, bool admitted = false) {
    if (state != 0) supersede_locked(state);
    const bool kick = enqueue_locked(frame, admitted);
    if (state != 0 && !closed_) states_.emplace_back(state, queue_.size() - 1);
    return kick;
  }

  // True when nobody is due to write yet: the caller takes it on.
  bool claim_flush_locked() {
    if (flush_due_ || waiting_room_ || !accepted_ || dropped_) return false;
    flush_due_ = true;
    return true;
  }

  void kick_locked() {
    if (claim_flush_locked()) schedule_flush();
  }

  void schedule_flush() {
    asio::post(executor_, [self = shared_from_this()] { self->flush(); });
  }

  // Under mutex_, on any thread. Everything waiting goes out in as few sends as it takes:
  // the unwritten rest of the last send, control frames, then queued frames as one writev
  // of each frame's header and its shared payload (serialised once per broadcast). A send
  // the kernel takes only part of leaves its rest in backlog_ and waits for room; a socket
  // that is closing sends its close frame once nothing else is left. The writes are plain
  // non-blocking system calls, not Asio operations: a broadcast writes to every recipient,
  // so a write must cost as little as it can.
  void write_locked() {
    if (!accepted_ || dropped_ || waiting_room_ || close_done_) return;
    thread_local std::vector<iovec> iov;
    thread_local std::string headers;
    for (;;) {
      if (!pong_.empty()) control_ += std::exchange(pong_, {});
      if (backlog_.empty() && control_.empty() && queue_empty()) {
        if (!closed_ || close_code_ == 0) {
          if (backlog_.capacity() > 4096) backlog_ = {};
          return;
        }
        if (close_sent_) {
          finish_close_locked();
          return;
        }
        close_sent_ = true;
        control_ = server_frame(Opcode::close, close_payload(close_code_, close_reason_));
      }
      iov.clear();
      std::size_t total = 0;
      auto add = [&](const char* p, std::size_t n) {
        iov.push_back({const_cast<char*>(p), n});
        total += n;
      };
      if (!backlog_.empty()) add(backlog_.data(), backlog_.size());
      if (!control_.empty()) add(control_.data(), control_.size());
      // A frame takes up to three buffers (header, text, tail); a send takes at most
      // kMaxBuffers, and the frames that do not fit wait for the next.
      std::size_t frames = 0;
      const std::size_t most = std::min(queue_size(), kMaxBatch);
      headers.resize(most * kMaxHeader);
      for (; frames < most && iov.size() + 3 <= kMaxBuffers; ++frames) {
        const auto& frame = queue_[queue_head_ + frames];
        if (!frame) continue;  // superseded
        char* h = headers.data() + frames * kMaxHeader;
        add(h, server_header(Opcode::text, frame.size(), h));
        add(frame.text->data(), frame.text->size());
        if (frame.tail) add(frame.tail->data(), frame.tail->size());
      }
      msghdr msg{};
      msg.msg_iov = iov.data();
      msg.msg_iovlen = iov.size();
      const ssize_t sent = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        // The peer is gone: the read loop ends the session.
        closed_ = true;
        clear_queue();
        backlog_.clear();
        control_.clear();
        drop_connection();
        return;
      }
      const auto written = static_cast<std::size_t>(std::max<ssize_t>(sent, 0));
      if (written == total) {
        backlog_.clear();
        control_.clear();
        pop_frames(frames);
        continue;
      }
      consume_partial_locked(written, frames);
      wait_for_room_locked();
      return;
    }
  }

  // The kernel took `written` bytes of a send of the backlog, control_ and the first
  // `frames` queued frames: what is fully written goes, the one unit it stopped in keeps
  // its rest in backlog_ (it must be finished before anything else goes out), and frames
  // it did not reach stay queued, so they still count against the slow-reader limit.
  void consume_partial_locked(std::size_t written, std::size_t frames) {
    if (written < backlog_.size()) {
      backlog_.erase(0, written);
      return;
    }
    written -= backlog_.size();
    backlog_.clear();
    if (written < control_.size()) {
      backlog_ = control_.substr(written);
      control_.clear();
      return;
    }
    written -= control_.size();
    control_.clear();
    std::size_t done = 0;
    for (; done < frames; ++done) {
      const auto& frame = queue_[queue_head_ + done];
      if (!frame) continue;  // superseded: nothing of it was sent
      char header[kMaxHeader];
      const std::size_t header_size = server_header(Opcode::text, frame.size(), header);
      const std::size_t unit = header_size + frame.size();
      if (written >= unit) {
        written -= unit;
        continue;
      }
      if (written > 0) {
        // Cut inside this frame: its rest goes first next time.
        if (written < header_size) backlog_.append(header + written, header_size - written);
        std::size_t from = written > header_size ? written - header_size : 0;
        const std::string& text = *frame.text;
        if (from < text.size()) backlog_.append(text, from);
        from = from > text.size() ? from - text.size() : 0;
        if (frame.tail) backlog_.append(*frame.tail, from);
        ++done;
      }
      break;
    }
    pop_frames(done);
  }

  // The kernel's send buffer is full: write again once it has room (the wait is started
  // on the strand, where the socket's other operations start).
  void wait_for_room_locked() {
    waiting_room_ = true;
    asio::post(executor_, [self = shared_from_this()] {
      self->socket_.async_wait(asio::socket_base::wait_write, [self](beast::error_code ec) {
        std::lock_guard lock(self->mutex_);
        self->waiting_room_ = false;
        if (ec) {
          self->closed_ = true;
          self->clear_queue();
          return;
        }
        self->write_locked();
      });
    });
  }

  // Our close frame is out and nothing follows it: a FIN tells the peer so (and ends its
  // wait for the server to close first). Answering theirs ends the connection; otherwise
  // the peer has a moment to answer before it is dropped. Under mutex_.
  void finish_close_locked() {
    close_done_ = true;
    beast::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    if (peer_closed_) {
      drop_connection();
      return;
    }
    // Cancelled when their close frame arrives (peer_closed).
    close_timer_ = std::make_unique<asio::steady_timer>(executor_, kCloseWait);
    close_timer_->async_wait([self = shared_from_this()](beast::error_code) {
      std::lock_guard lock(self->mutex_);
      self->drop_connection();
    });
  }

  asio::any_io_executor executor_;              // the connection's strand
  std::optional<beast::tcp_stream> handshake_;  // until the upgrade is answered
  tcp::socket socket_;                          // after it
  Admission admission_;
  RealtimeContext& context_;
  // Reading (strand only).
  std::string pending_;  // bytes of an incomplete frame, or not yet looked at
  std::string message_;  // a fragmented message so far
  bool in_message_ = false;
  bool text_message_ = true;
  bool discarding_ = false;  // after a protocol error
  bool reading_ = true;      // until the session ends
  Clock::time_point opened_at_{};
  Limiter limiter_;
  std::atomic<Clock::rep> last_heard_{0};
  Clock::time_point pinged_for_{};  // the silence that was already pinged (under mutex_)
  std::mutex mutex_;
  // Frames waiting to be written: queue_[queue_head_..] (a vector: no allocation while idle).
  std::vector<Queued> queue_;
  std::size_t queue_head_ = 0;
  // Queued state frames not yet written: (state key, place in queue_).
  std::vector<std::pair<std::int64_t, std::size_t>> states_;
  std::string backlog_;           // the unwritten rest of a write the kernel took only part of
  bool flush_due_ = false;        // a flush is posted, or the hub will call flush()
  bool waiting_room_ = false;     // for the kernel's send buffer to drain
  bool dropped_ = false;          // the descriptor is closed: nothing more is written
  bool accepted_ = false;         // the handshake is done
  bool counted_open_ = false;     // in the sockets gauge (strand)
  bool presence_joined_ = false;  // presence was told it connected (strand)
  bool closed_ = false;           // nothing more is queued
  int close_code_ = 0;            // a close frame to send once the queue is drained
  std::string close_reason_;
  bool close_sent_ = false;
  bool close_done_ = false;   // the close frame is written and our side shut down
  bool peer_closed_ = false;  // the peer's close frame arrived (or the peer is gone)
  std::string control_;       // framed pings, pongs (sent before queued frames)
  std::string pong_;          // the pong for the newest ping, until a send takes it
  std::unique_ptr<asio::steady_timer> close_timer_;
  std::optional<Clock::time_point> closing_seen_at_;  // the first sweep that saw it closing
  bool buffering_ = false;
  struct Held {
    std::int64_t seq;    // 0: not logged
    std::int64_t state;  // 0: not a state (see queue())
    Queued frame;
  };
  std::vector<Held> buffered_;
  std::size_t buffered_weight_ = 0;  // of the frames held (weight_of)

  std::int64_t replayed_through_ = 0;
  std::int64_t opened_at_seq_ = 0;  // where the log stood when the socket read its chats
  // Its number in the deployment's count of the user's sockets (0: not counted there).
  std::int64_t socket_serial_ = 0;
  std::size_t queued_bytes_ = 0;   // payload bytes of the frames queued (under mutex_)
  std::size_t queued_weight_ = 0;  // what they count toward the limit (weight_of; under mutex_)
};

}  // namespace

void start_socket(beast::tcp_stream stream, beast::http::request<beast::http::string_body> request,
                  Admission admission, RealtimeContext& context) {
  auto socket = std::make_shared<Socket>(std::move(stream), std::move(admission), context);
  auto executor = socket->executor();
  asio::co_spawn(executor, socket->start(std::move(request)),
                 [socket](const std::exception_ptr& error) {
                   if (error) socket->abandon(error);
                 });
}

}  // namespace chat::ws
