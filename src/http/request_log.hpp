// The record of an answered request: its log line and its metrics. The HTTP server writes
// it for every answer it gives; a WebSocket writes it for its upgrade request once it knows
// whether the upgrade was answered with 101 or refused.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace chat::http {

struct RequestOutcome {
  std::string_view request_id;
  std::string_view client;
  std::string_view method;  // as sent (the log), "-" when the request could not be read
  std::string_view path;    // without the query string: it may carry a token
  // The route pattern (never the raw path, whose ids would make a series per chat), or
  // empty: "unmatched" for a 404, else "none".
  std::string_view route;
  int status = 0;
  std::size_t bytes = 0;
  std::chrono::steady_clock::time_point started;
};

void record_request(const RequestOutcome& r);

// The route of a socket path: /ws/ or /ws/chat/{chat_id}/.
const char* socket_route(std::string_view path);

}  // namespace chat::http
