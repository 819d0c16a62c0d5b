// What happens to a parsed request before and after its handler: the Host check, routing
// (404, 405, OPTIONS), and turning an outage or a bug into a 503 or 500 instead of a
// dropped connection.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"
#include "http/router.hpp"

namespace chat::http {

class StaticFiles;

class HttpApp {
 public:
  HttpApp(const Router& router, std::vector<std::string> allowed_hosts,
          const StaticFiles* static_files = nullptr)
      : router_(router), allowed_hosts_(std::move(allowed_hosts)), static_files_(static_files) {}

  // Never throws; `route` is set to the matched pattern (for logs).
  boost::asio::awaitable<Response> handle(Request& req, std::string& route) const;

  // Django's ALLOWED_HOSTS check: the 400 to answer when the Host header does not name
  // this server, else nothing. WebSocket handshakes pass it too, before the gate (whose
  // Origin check compares against this Host).
  [[nodiscard]] std::optional<Response> host_refusal(const Request& req) const;

  // Logs a request answered 503 because the database is away: the first of an outage, then
  // at most one line every 10 s saying how many more there were (every request fails while
  // it lasts, and each already has its access line).
  static void log_unavailable(std::string_view during, const std::exception& e);

 private:
  const Router& router_;
  std::vector<std::string> allowed_hosts_;
  const StaticFiles* static_files_;
};

}  // namespace chat::http
