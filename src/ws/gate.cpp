#include "ws/gate.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "auth/auth_service.hpp"
#include "chat/chat_service.hpp"
#include "http/bearer_header.hpp"
#include "http/drf.hpp"

namespace chat::ws {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// 0 for /ws/, the chat id for /ws/chat/{id}/, nullopt for anything else.
std::optional<std::int64_t> socket_chat(std::string_view path) {
  if (path.ends_with('/')) path.remove_suffix(1);
  if (path == "/ws") return 0;
  constexpr std::string_view prefix = "/ws/chat/";
  if (!path.starts_with(prefix)) return std::nullopt;
  auto id = path.substr(prefix.size());
  std::int64_t value = 0;
  auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (id.empty() || ec != std::errc{} || p != id.data() + id.size() || value <= 0)
    return std::nullopt;
  return value;
}

// RFC 6455 4.2.1: the key is 16 random bytes in base64, so 24 characters: 21 of the
// alphabet, one whose low bits are zero (A, Q, g or w), then "==".
bool valid_websocket_key(std::string_view key) {
  auto base64 = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
  };
  if (key.size() != 24 || !key.ends_with("==")) return false;
  for (std::size_t i = 0; i < 21; ++i) {
    if (!base64(key[i])) return false;
  }
  return std::string_view("AQgw").find(key[21]) != std::string_view::npos;
}

}  // namespace

bool Gate::is_socket_path(std::string_view path) {
  return socket_chat(path).has_value();
}

bool Gate::origin_allowed(std::string_view origin, std::string_view host) const {
  if (origin.empty()) return true;  // not a browser: the Origin check guards browsers
  const std::string o = lower(origin);
  for (const auto& allowed : allowed_origins_) {
    if (allowed == "*" || lower(allowed) == o) return true;
  }
  // The server's own pages may always connect (the origin's host is the Host): an origin
  // listed for another site's client must not cut off the built-in one.
  const auto scheme_end = o.find("://");
  return scheme_end != std::string::npos && o.substr(scheme_end + 3) == lower(host);
}

boost::asio::awaitable<Result<Admission>> Gate::admit(const http::Request& req) const {
  Admission a;
  const auto chat = socket_chat(req.path);
  if (!chat) co_return Error::not_found();
  a.chat_id = *chat;
  if (!valid_websocket_key(req.header("sec-websocket-key"))) {
    co_return Error::bad_request("Invalid or missing Sec-WebSocket-Key header.");
  }

  // The token: query, then header (read as REST reads it), then the subprotocol pair
  // "access_token, <token>".
  std::string token;
  const std::string authorization = req.header_joined("authorization");
  const http::BearerHeader bearer = http::read_bearer_header(authorization);
  const auto protocols = req.header("sec-websocket-protocol");
  const auto comma = protocols.find(',');
  // A browser that offered the subprotocol fails a handshake that names none, wherever the
  // token was read from: it is answered whenever it was offered.
  if (!protocols.empty() && trim(protocols.substr(0, comma)) == "access_token") {
    a.subprotocol = "access_token";
  }
  if (const auto* q = req.query_param("token")) {
    token = *q;
  } else if (bearer.kind == http::BearerHeader::Kind::malformed) {
    co_return http::malformed_bearer_header();
  } else if (bearer.kind == http::BearerHeader::Kind::token) {
    token = std::string(bearer.token);
  } else if (!a.subprotocol.empty() && comma != std::string_view::npos) {
    token = std::string(trim(protocols.substr(comma + 1)));
  }
  if (token.empty())
    co_return Error::unauthenticated("Authentication credentials were not provided.");
  auto who = co_await auth_.authenticate_session(token);
  if (!who) co_return std::move(who).error();
  a.user = std::move(who->user);
  a.session = std::move(who->session);

  if (!origin_allowed(req.header("origin"), req.header("host"))) {
    co_return Error::forbidden("Origin not allowed.");
  }
  // Read as GET /api/events/ reads it: an empty `since=` is left out (no replay).
  FieldErrors errors;
  auto since = http::query_integer(req, "since", errors, 0);
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  if (since) {
    if (a.chat_id != 0)
      co_return Error::field("since", "Resuming is for the user socket /ws/ only.");
    a.since = since;
  }
  if (a.chat_id != 0) {
    auto outsider = co_await not_a_member(a.user.id, a.chat_id);
    if (outsider) co_return std::move(*outsider);
  }
  co_return a;
}

boost::asio::awaitable<std::optional<Error>> Gate::not_a_member(std::int64_t user_id,
                                                                std::int64_t chat_id) const {
  auto m = co_await chats_.membership(user_id, chat_id);  // named: g++ 12 and temporaries
  if (m) co_return std::nullopt;
  // API.md: a missing chat is 404 and a chat one is not in 403, for the handshake.
  if (!co_await chats_.exists(chat_id)) co_return Error::not_found();
  co_return Error::forbidden("You are not a member of this chat.");
}

boost::asio::awaitable<Result<Ok>> Gate::still_admitted(const Admission& a) const {
  auto valid = co_await auth_.still_valid(a.user.id, a.session);
  if (!valid || a.chat_id == 0) co_return valid;
  // Removed from the chat (or the chat deleted) after admit(): the news may have gone out
  // before the node listened for the chat, so the socket would hear a chat it left.
  auto outsider = co_await not_a_member(a.user.id, a.chat_id);
  if (outsider) co_return std::move(*outsider);
  co_return valid;
}

}  // namespace chat::ws
