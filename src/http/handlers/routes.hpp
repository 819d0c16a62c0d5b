// The REST endpoints, grouped as API.md groups them. Each add_* registers its routes; the
// handlers only parse, call a service, and serialise.
#pragma once

#include <functional>

namespace chat::auth {
class AuthService;
class RequestThrottle;
}  // namespace chat::auth
namespace chat::users {
class UserService;
class OnlineUsers;
}  // namespace chat::users
namespace chat::store {
class Store;
}
namespace chat::admin {
class AdminService;
}
namespace chat::chats {
class ChatService;
class MessageService;
}  // namespace chat::chats

namespace chat::http {

class Router;

struct Services {
  auth::AuthService& auth;
  users::UserService& users;
  users::OnlineUsers& online;
  chats::ChatService& chats;
  chats::MessageService& messages;
  store::Store& store;
  admin::AdminService& admin;
  auth::RequestThrottle& throttle;  // USER_THROTTLE_RATE, after authentication
  // True while the broker carries events (always, on one node); /readyz reports it.
  std::function<bool()> broker_ready;
};

void add_auth_routes(Router& router, Services& services);
void add_user_routes(Router& router, Services& services);
void add_chat_routes(Router& router, Services& services);
void add_message_routes(Router& router, Services& services);
void add_health_routes(Router& router, Services& services);
void add_doc_routes(Router& router, Services& services);
void add_admin_routes(Router& router, Services& services);

// All of the above.
void add_all_routes(Router& router, Services& services);

}  // namespace chat::http
