// The client side of chatbench's sockets: TCP from one of several loopback source
// addresses, HTTP/1.1 requests on keep-alive connections, and a WebSocket client that
// reads every frame of a read at once and queues writes into one send.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace chatbench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Target {
  std::string host = "127.0.0.1";
  unsigned short port = 8000;
  int sources = 1;  // connect from 127.0.0.1 .. 127.0.0.<sources>, in turn
  [[nodiscard]] std::string host_header() const { return host + ":" + std::to_string(port); }
};

// Connection number `n` goes out from source address n % sources.
asio::awaitable<tcp::socket> connect(const Target& target, std::uint64_t n);

struct HttpResponse {
  int status = 0;
  std::string body;
};

// A keep-alive HTTP/1.1 connection for setup calls and the history scenario.
class HttpConnection {
 public:
  explicit HttpConnection(tcp::socket socket, std::string host)
      : socket_(std::move(socket)), host_(std::move(host)) {}
  asio::awaitable<HttpResponse> request(std::string_view method, std::string_view target,
                                        std::string_view token = {}, std::string_view body = {});

 private:
  tcp::socket socket_;
  std::string host_;
  std::string buffer_;
};

// Called with each text frame's payload and the time its read completed.
using OnText = std::function<void(std::string_view payload, Clock::time_point at)>;

class WsClient : public std::enable_shared_from_this<WsClient> {
 public:
  explicit WsClient(tcp::socket socket) : socket_(std::move(socket)) {}

  // The upgrade; returns the HTTP status (101 when the socket is open).
  asio::awaitable<int> handshake(const std::string& path, const std::string& host);
  // Queues a text frame; frames queued while a write is in flight go out in one send.
  void send_text(std::string_view payload);
  // Reads until the server closes (returns its close code, 1006 for a dropped connection).
  asio::awaitable<int> read(OnText on_text);
  // Sends a close frame and shuts the socket down.
  void close();
  [[nodiscard]] bool open() const { return socket_.is_open(); }

 private:
  void write_more();

  tcp::socket socket_;
  std::string in_;
  std::size_t in_used_ = 0;
  std::string queued_;
  std::string writing_;
  bool write_in_flight_ = false;
};

}  // namespace chatbench
