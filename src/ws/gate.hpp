// Who may open a socket, decided before the upgrade (API.md "WebSocket"): the token from
// ?token=, Authorization: Bearer, or the `access_token` subprotocol; the Origin against
// ALLOWED_ORIGINS (so a page on another site cannot use a user's token); the chat and
// membership for /ws/chat/{id}/. Refusals are plain HTTP answers: 401, 403, 404.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "http/message.hpp"
#include "store/user_store.hpp"

namespace chat::auth {
class AuthService;
}
namespace chat::chats {
class ChatService;
}

namespace chat::ws {

struct Admission {
  store::UserRecord user;
  std::string session;                // the token's login session (see auth::Authenticated)
  std::int64_t chat_id = 0;           // 0: the user socket /ws/
  std::optional<std::int64_t> since;  // resume cursor (user socket)
  std::string subprotocol;            // echoed whenever the client offered it
  // The upgrade request, for its record and the socket's log lines.
  std::string request_id;
  std::string client_address;
  std::string path;
  std::chrono::steady_clock::time_point received_at{};
};

class Gate {
 public:
  Gate(auth::AuthService& auth, chats::ChatService& chats, std::vector<std::string> allowed_origins)
      : auth_(auth), chats_(chats), allowed_origins_(std::move(allowed_origins)) {}

  // True for /ws/ and /ws/chat/{id}/ (with or without the trailing slash).
  [[nodiscard]] static bool is_socket_path(std::string_view path);
  boost::asio::awaitable<Result<Admission>> admit(const http::Request& req) const;
  // The admitted token's account and login session checked again, once the socket's node
  // listens for the user: a deactivation or logout between admit() and then may have sent
  // its "close" before that. A chat socket's membership too, for the same reason. Throws
  // store::Unavailable when the database cannot tell.
  boost::asio::awaitable<Result<Ok>> still_admitted(const Admission& a) const;
  [[nodiscard]] bool origin_allowed(std::string_view origin, std::string_view host) const;

 private:
  // Why the user may not open a socket of the chat (404: no such chat; 403: not in it).
  boost::asio::awaitable<std::optional<Error>> not_a_member(std::int64_t user_id,
                                                            std::int64_t chat_id) const;

  auth::AuthService& auth_;
  chats::ChatService& chats_;
  std::vector<std::string> allowed_origins_;
};

}  // namespace chat::ws
