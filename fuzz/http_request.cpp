// The REST path without a socket: raw HTTP/1.1 bytes, parsed by Beast as the server parses
// them, through HttpApp (Host check, static files, routing, 404/405/OPTIONS) into the real
// handlers and services over a temporary SQLite store (fuzz_world.hpp). "<alice>", "<bob>"
// and "<carol>" in the input become those users' access tokens, so the endpoints behind
// authentication are reached too. An input that starts with '*' is served as with
// ALLOWED_HOSTS=* (the '*' is not part of the request), any other with the default list.
//
// Not covered here: reading from the socket (timeouts, size limits, 100-continue) and the
// WebSocket upgrade, which live in http/server.cpp and need a connection.
//
// Invariants: no request gets a 5xx (the store is healthy, so a 500 or 503 is a bug), a
// JSON response is valid JSON, and a 405 says which methods are allowed.

#include <algorithm>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "fuzz_check.hpp"
#include "fuzz_world.hpp"
#include "http/app.hpp"
#include "http/message.hpp"
#include "http/request_reader.hpp"

namespace {

namespace bhttp = boost::beast::http;
using chat::fuzz::require;

// The request as http/server.cpp hands it to HttpApp; nullopt for what the server answers
// itself (400, 413, 431) without reaching the app.
std::optional<chat::http::Request> parse_request(const std::string& raw) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.eager(true);
  parser.header_limit(16 * 1024);
  parser.body_limit(1024 * 1024);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (used < raw.size() && !parser.is_done()) {
    const auto n = parser.put(boost::asio::buffer(raw.data() + used, raw.size() - used), ec);
    if (ec == bhttp::error::need_more) break;
    if (ec) return std::nullopt;
    used += n;
  }
  if (!parser.is_done()) {
    if (!parser.got_some()) return std::nullopt;  // put_eof()'s precondition
    ec = {};
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return std::nullopt;
  }
  auto& msg = parser.get();
  chat::http::Request req;
  req.request_id = "fuzz";
  req.client_address = "127.0.0.1";
  if (!chat::http::read_request(msg, req)) return std::nullopt;
  return req;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& world = chat::fuzz::world();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const bool any_host = !input.empty() && input.front() == '*';
  if (any_host) input.remove_prefix(1);
  const std::string raw = world.with_tokens(input);
  auto req = parse_request(raw);
  if (!req) return 0;
  const std::string described = req->method_text + " " + req->path;

  std::string route;
  const auto* app = any_host ? world.app_any_host : world.app;
  const chat::http::Response res = world.run(app->handle(*req, route));

  // FUZZ_VERBOSE=1: what each input got, to check that seeds reach what they are for.
  static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
  if (verbose) {
    std::fprintf(stderr, "%s -> %d %.200s\n", described.c_str(), res.status, res.body.c_str());
  }
  require(res.status >= 200 && res.status < 500, "a request got a 5xx (or no) status",
          described + " -> " + std::to_string(res.status) + " " + res.body);
  if (res.content_type == "application/json" && !res.body.empty()) {
    boost::system::error_code ec;
    (void)boost::json::parse(res.body, ec);
    require(!ec, "a JSON response is not valid JSON", described + " -> " + res.body);
  }
  if (res.status == 405) {
    const bool has_allow = std::any_of(res.headers.begin(), res.headers.end(),
                                       [](const auto& h) { return h.first == "Allow"; });
    require(has_allow, "a 405 without Allow", described);
  }
  return 0;
}
