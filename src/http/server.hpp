// The listening socket and the HTTP/1.1 connections it accepts (keep-alive, size limits,
// timeouts, Expect: 100-continue). The only part of the program that includes Beast.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace chat::ws {
struct RealtimeContext;
}

namespace chat::http {

class HttpApp;

struct ServerOptions {
  std::string bind = "0.0.0.0";
  unsigned short port = 8000;
  std::size_t max_body_bytes = std::size_t{1024} * 1024;
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  int request_timeout_seconds = 30;    // to read one request once it has started
  int keepalive_timeout_seconds = 75;  // idle time between requests
  std::vector<std::string> trusted_proxies;
};

class Server {
 public:
  // `realtime` may be null: then WebSocket paths answer 404.
  Server(boost::asio::io_context& io, ServerOptions options, const HttpApp& app,
         ws::RealtimeContext* realtime = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting; throws with a readable message when the port is taken.
  void start();
  // Stops accepting; connections finish the request they are on and close. A request
  // read after this is answered 503 (nothing of it done).
  void stop();
  // Requests read and not yet answered and recorded (a shutdown waits for them; idle
  // keep-alive connections do not count).
  [[nodiscard]] int requests_in_progress() const;
  [[nodiscard]] unsigned short port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace chat::http
