#include "http/server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <atomic>
#include <chrono>

#include "http/app.hpp"
#include "http/beast_response.hpp"
#include "http/drf.hpp"
#include "http/request_log.hpp"
#include "http/request_reader.hpp"
#include "http/response_writer.hpp"
#include "metrics/metrics.hpp"
#include "store/store.hpp"
#include "ws/gate.hpp"
#include "ws/ws_session.hpp"

namespace chat::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string next_request_id() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t boot =
      static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%llu",
                static_cast<unsigned long long>(boot & 0xffffffffULL),
                static_cast<unsigned long long>(++counter));
  return buf;
}

// The address and port a connection reached, as Django writes a host from SERVER_NAME and
// SERVER_PORT: "127.0.0.1:8000", "[::1]:8000", without the port when it is 80.
std::string server_host(const tcp::socket& socket) {
  beast::error_code ec;
  const auto local = socket.local_endpoint(ec);
  if (ec) return {};
  std::string host;
  if (local.address().is_v6()) {
    host += '[';
    host += local.address().to_string();
    host += ']';
  } else {
    host = local.address().to_string();
  }
  if (local.port() != 80) {
    host += ':';
    host += std::to_string(local.port());
  }
  return host;
}

// With a trusted proxy in front, the client is the last address it appended.
std::string client_address(const std::string& peer, std::string_view forwarded_for,
                           const std::vector<std::string>& trusted) {
  if (forwarded_for.empty() || std::find(trusted.begin(), trusted.end(), peer) == trusted.end()) {
    return peer;
  }
  auto comma = forwarded_for.rfind(',');
  auto last = comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1);
  while (!last.empty() && last.front() == ' ') last.remove_prefix(1);
  while (!last.empty() && last.back() == ' ') last.remove_suffix(1);
  return last.empty() ? peer : std::string(last);
}

// Counts an open connection until it ends, or until a WebSocket takes it over (which
// counts it from there on).
class OpenConnection {
 public:
  OpenConnection() {
    metrics::metrics().connections_accepted.inc();
    metrics::metrics().connections_open.add(1);
  }
  ~OpenConnection() {
    if (open_) metrics::metrics().connections_open.add(-1);
  }
  OpenConnection(const OpenConnection&) = delete;
  OpenConnection& operator=(const OpenConnection&) = delete;
  void hand_over() { open_ = false; }

 private:
  bool open_ = true;
};

// Counts a request from its header's arrival to its record (answered and logged), or to
// the WebSocket that takes it over.
class InProgress {
 public:
  explicit InProgress(std::atomic<int>& n) : n_(n) { ++n_; }
  ~InProgress() { --n_; }
  InProgress(const InProgress&) = delete;
  InProgress& operator=(const InProgress&) = delete;

 private:
  std::atomic<int>& n_;
};

}  // namespace

// Connections accepted at once after each async_accept (see accept_loop).
constexpr int kAcceptBurst = 256;

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(asio::io_context& io, ServerOptions o, const HttpApp& a, ws::RealtimeContext* rt)
      : io(io), options(std::move(o)), app(a), realtime(rt), acceptor(io) {}

  asio::io_context& io;
  ServerOptions options;
  const HttpApp& app;
  ws::RealtimeContext* realtime;
  tcp::acceptor acceptor;
  std::atomic<int> in_progress{0};  // requests being answered (InProgress)
  // Set by stop(): a request read after it is refused (503) and every answer closes its
  // connection, so that the requests a shutdown waits for are the ones already under way.
  // Clients that kept a connection open would otherwise go on writing through the whole
  // grace period, and what committed as it ran out was never announced to other nodes.
  std::atomic<bool> stopping{false};

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), use_tuple);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        // EMFILE and friends: back off briefly instead of spinning.
        spdlog::warn("accept failed: {}", ec.message());
        asio::steady_timer t(io, std::chrono::milliseconds(50));
        co_await t.async_wait(use_tuple);
        continue;
      }
      start_session(std::move(socket));
      // Then the connections already waiting, up to a burst, without a turn through the
      // scheduler for each: one accept per turn, behind every handler already queued,
      // let the kernel's listen queue overflow in a reconnect storm (24,699 SYNs dropped
      // in one 19,000-client storm here, their clients waiting out 1-7 s retransmits).
      for (int i = 0; i < kAcceptBurst; ++i) {
        tcp::socket more(asio::make_strand(io));
        boost::system::error_code again;
        acceptor.accept(more, again);  // non-blocking: would_block once the queue is empty
        if (again) break;              // any other error comes back to async_accept above
        start_session(std::move(more));
      }
    }
  }

  void start_session(tcp::socket socket) {
    // No Nagle: a frame written while the previous one is unacknowledged would otherwise
    // wait for the client's ACK, which delayed ACKs hold back up to 40 ms. Every write
    // here is already a whole answer or every frame queued for the socket.
    boost::system::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, session(std::move(socket)), asio::detached);
  }

  // Answers an error the parser found (the request's line may be unreadable: it is logged
  // as "-") and tells the caller to close the connection.
  asio::awaitable<void> reply_and_close(beast::tcp_stream& stream, int status, const char* detail,
                                        const std::string& peer) {
    const auto started = std::chrono::steady_clock::now();
    Response r = json_response(status, boost::json::object{{"detail", detail}});
    const auto bytes = r.body.size();
    const std::string request_id = next_request_id();
    auto res = to_beast(std::move(r), 11, false, false, request_id);
    co_await bhttp::async_write(stream, res, use_tuple);
    const RequestOutcome outcome{request_id, peer, "-", "-", "", status, bytes, started};
    record_request(outcome);
  }

  asio::awaitable<void> session(tcp::socket socket) {
    auto self = shared_from_this();
    OpenConnection counted;
    beast::error_code ec;
    const auto endpoint = socket.remote_endpoint(ec);
    const std::string peer = ec ? std::string("unknown") : endpoint.address().to_string();
    const std::string server_name = server_host(socket);
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (bool first = true;; first = false) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);

      // Idle between requests of a kept-alive connection: up to the keep-alive timeout for
      // the next request's first bytes. A new connection gets the request timeout for them,
      // and every request, once begun, the request timeout for its whole header: a client
      // that trickles its header in does not hold the connection any longer than that.
      if (buffer.size() == 0) {
        stream.expires_after(std::chrono::seconds(first ? options.request_timeout_seconds
                                                        : options.keepalive_timeout_seconds));
        auto [iec, in] = co_await stream.async_read_some(buffer.prepare(4096), use_tuple);
        buffer.commit(in);
        if (iec) break;
      }
      stream.expires_after(std::chrono::seconds(options.request_timeout_seconds));
      // A request's header usually arrives whole in one read: parsed here at once, without
      // a read operation that would find it in the buffer and come back through the
      // scheduler. A part of one is read on as it comes.
      beast::error_code rec = bhttp::error::need_more;
      if (buffer.size() > 0) buffer.consume(parser.put(buffer.data(), rec));
      if (rec == bhttp::error::need_more) {
        auto [read_ec, rn] = co_await bhttp::async_read_header(stream, buffer, parser, use_tuple);
        rec = read_ec;
      }
      const InProgress busy(in_progress);
      // A request whose header came in before the server began to stop is under way: it is
      // answered in full, its body read after.
      const bool refused_for_stop = stopping.load();
      if (rec) {
        if (rec == bhttp::error::header_limit) {
          co_await reply_and_close(stream, 431, "Request header fields too large.", peer);
        } else if (rec == bhttp::error::body_limit) {
          // Beast refuses a declared Content-Length over the limit while reading the header.
          co_await reply_and_close(stream, 413, "Request body too large.", peer);
        } else if (rec != bhttp::error::end_of_stream && rec != beast::error::timeout &&
                   rec != asio::error::connection_reset && rec != asio::error::eof &&
                   rec != asio::error::operation_aborted && buffer.size() > 0) {
          co_await reply_and_close(stream, 400, "Malformed request.", peer);
        }
        break;
      }
      const auto& header = parser.get();
      // RFC 9112 6.3: a request whose last transfer coding is not chunked has no length the
      // server can know, and more than one Host names no host: 400, and the connection
      // closes (what follows could not be told from the body).
      if ((header.count(bhttp::field::transfer_encoding) > 0 && !parser.chunked()) ||
          header.count(bhttp::field::host) > 1) {
        co_await reply_and_close(stream, 400, "Malformed request.", peer);
        break;
      }
      if (auto len = parser.content_length(); len && *len > options.max_body_bytes) {
        co_await reply_and_close(stream, 413, "Request body too large.", peer);
        break;
      }
      if (beast::iequals(header[bhttp::field::expect], "100-continue")) {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, header.version()};
        co_await bhttp::async_write(stream, cont, use_tuple);
      }
      stream.expires_after(std::chrono::seconds(options.request_timeout_seconds));
      if (!parser.is_done()) {
        auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
        if (bec == bhttp::error::body_limit) {
          co_await reply_and_close(stream, 413, "Request body too large.", peer);
          break;
        }
        if (bec) {
          if (bec != beast::error::timeout && bec != asio::error::eof &&
              bec != asio::error::connection_reset && bec != bhttp::error::partial_message) {
            co_await reply_and_close(stream, 400, "Malformed request.", peer);
          }
          break;
        }
      }
      stream.expires_never();

      const auto started = std::chrono::steady_clock::now();
      auto& msg = parser.get();
      Request req;
      req.request_id = next_request_id();
      req.client_address = client_address(peer, msg["X-Forwarded-For"], options.trusted_proxies);
      const bool target_ok = read_request(msg, req);
      // HTTP/1.0 lets a client leave Host out; Django then names the server by the address
      // it was reached at (SERVER_NAME, and the port unless 80), and checks that instead.
      if (msg.version() < 11 && msg.find(bhttp::field::host) == msg.end()) {
        req.headers.emplace_back("host", server_name);
      }
      const bool keep_alive = msg.keep_alive() && !refused_for_stop;
      const unsigned version = msg.version();

      Response response;
      std::string route;
      if (refused_for_stop) {
        // Nothing of it was done: the client may send it again, to another node.
        response = error_response(Error::unavailable("The server is shutting down."));
        route = "stopping";
      } else if (target_ok && realtime != nullptr && ws::Gate::is_socket_path(req.path) &&
                 beast::websocket::is_upgrade(msg)) {
        // Refusals are answered before the upgrade, as plain HTTP.
        if (auto refused = app.host_refusal(req)) {
          response = std::move(*refused);
        } else {
          // The gate reads the user (and, on a chat socket, the membership): an outage is
          // a 503 as on REST, not a connection dropped without an answer.
          Result<ws::Admission> admission = Error::unavailable();
          try {
            admission = co_await realtime->gate.admit(req);
          } catch (const store::Unavailable& e) {
            HttpApp::log_unavailable("a socket handshake", e);
          }
          if (admission) {
            admission->request_id = req.request_id;
            admission->client_address = req.client_address;
            admission->path = req.path;
            admission->received_at = started;
            counted.hand_over();
            // The socket lives on by itself; this HTTP session and its buffers end here. It
            // records the request once it has answered it (101, or a refusal), then logs its
            // own lifecycle (socket.open, socket.close) with this request's id.
            ws::start_socket(std::move(stream), std::move(msg), std::move(*admission), *realtime);
            co_return;
          }
          response = error_response(admission.error());
        }
        route = socket_route(req.path);  // refused before the upgrade
      } else if (!target_ok) {
        response = error_response(Error::bad_request("Malformed request target."));
      } else {
        response = co_await app.handle(req, route);
      }
      const int status = response.status;
      const auto bytes = response.body.size();
      // A request under way when the server began to stop is answered, and its connection
      // closed after it.
      auto res = to_beast(std::move(response), version, keep_alive && !stopping.load(),
                          req.method == Method::head, req.request_id);
      stream.expires_after(std::chrono::seconds(options.request_timeout_seconds));
      const beast::error_code wec = co_await write_response(stream, res);
      const RequestOutcome outcome{
          req.request_id, req.client_address, req.method_text, req.path, route, status, bytes,
          started};
      record_request(outcome);
      if (wec || !keep_alive || res.need_eof()) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
};

Server::Server(asio::io_context& io, ServerOptions options, const HttpApp& app,
               ws::RealtimeContext* realtime)
    : impl_(std::make_shared<Impl>(io, std::move(options), app, realtime)) {}

Server::~Server() = default;

void Server::start() {
  auto& a = impl_->acceptor;
  beast::error_code ec;
  const auto address = asio::ip::make_address(impl_->options.bind, ec);
  if (ec) throw std::runtime_error("BIND: '" + impl_->options.bind + "' is not an IP address");
  tcp::endpoint ep(address, impl_->options.port);
  a.open(ep.protocol());
  a.set_option(asio::socket_base::reuse_address(true));
  a.bind(ep, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + impl_->options.bind + ":" +
                             std::to_string(impl_->options.port) + ": " + ec.message());
  }
  a.listen(asio::socket_base::max_listen_connections);
  a.non_blocking(true);  // accept_loop drains the queue with accept() until would_block
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
}

void Server::stop() {
  impl_->stopping = true;
  beast::error_code ec;
  impl_->acceptor.close(ec);
}

int Server::requests_in_progress() const {
  return impl_->in_progress.load();
}

unsigned short Server::port() const {
  beast::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

}  // namespace chat::http
