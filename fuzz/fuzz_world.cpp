#include "fuzz_world.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "admin/admin_service.hpp"
#include "auth/auth_service.hpp"
#include "auth/jwt_codec.hpp"
#include "auth/password_hasher.hpp"
#include "auth/rate_limiter.hpp"
#include "auth/request_throttle.hpp"
#include "chat/chat_service.hpp"
#include "chat/message_service.hpp"
#include "common/time.hpp"
#include "config/settings.hpp"
#include "http/app.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"
#include "http/static_files.hpp"
#include "realtime/broker.hpp"
#include "realtime/client_events.hpp"
#include "realtime/presence.hpp"
#include "realtime/typing.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "users/user_service.hpp"

namespace chat::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPassword = "correct-horse-battery-staple";

std::string& folder_to_remove() {
  static std::string folder;
  return folder;
}

// The store's files go with the process (libFuzzer ends with exit()).
void remove_folder() {
  std::error_code ec;
  if (!folder_to_remove().empty()) fs::remove_all(folder_to_remove(), ec);
}

std::unique_ptr<store::Store> open_scratch_store() {
  std::string pattern = (fs::temp_directory_path() / "chatd-fuzz-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  folder_to_remove() = pattern;
  std::atexit(remove_folder);
  config::DatabaseSettings db;
  db.sqlite_path = pattern + "/db.sqlite3";
  db.read_connections = 1;
  auto store = store::sqlite::open_store(db);
  store->migrate();
  return store;
}

}  // namespace

// Wired as serve() wires them (src/app/serve.cpp), minus the sockets, Redis and the hub.
struct World::Parts {
  explicit Parts(boost::asio::io_context& /*io*/)
      : store(open_scratch_store()),
        // The cheapest Argon2id libsodium allows: registrations and logins are inputs too.
        hasher(1, auth::HashCost{1, 8192}),
        limiter(auth::make_memory_rate_limiter()),
        jwt("fuzz-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"),
        auth(*store, hasher, *limiter, jwt, auth::AuthSettings{}),
        users(*store, auth, hasher),
        chats(*store),
        messages(*store, chats),
        broker(realtime::make_in_process_broker()),
        announcer(*store, *broker),
        presence(realtime::make_local_presence(announcer, std::chrono::seconds(5))),
        admin(*store, auth, *presence, messages,
              [this](std::int64_t user_id) {
                broker->publish_session_end({user_id, 4003, "account deactivated"});
              }),
        throttle(*limiter, 0, 0),
        services{auth,  users,    *presence,          chats, messages, *store,
                 admin, throttle, [] { return true; }},
        app(router, {"localhost", "testserver", "[::1]"}, &static_files),
        app_any_host(router, {"*"}, &static_files),
        typing(*broker),
        events(chats, messages, typing, *store) {
    http::add_all_routes(router, services);
    http::mount_web_pages(static_files, CHATD_SOURCE_DIR "/web");
  }

  std::unique_ptr<store::Store> store;
  auth::PasswordHasher hasher;
  std::unique_ptr<auth::RateLimiter> limiter;
  auth::JwtCodec jwt;
  auth::AuthService auth;
  users::UserService users;
  chats::ChatService chats;
  chats::MessageService messages;
  std::unique_ptr<realtime::Broker> broker;
  realtime::PresenceAnnouncer announcer;
  std::unique_ptr<realtime::Presence> presence;
  admin::AdminService admin;
  auth::RequestThrottle throttle;
  http::Services services;
  http::Router router;
  http::StaticFiles static_files;
  http::HttpApp app;
  http::HttpApp app_any_host;
  realtime::Typing typing;
  realtime::ClientEvents events;
  std::map<std::string, std::string, std::less<>> tokens;  // "<alice>" -> access token
};

namespace {

boost::asio::awaitable<store::UserRecord> add_user(World::Parts& p, const std::string& name) {
  auth::RegistrationInput in;
  in.username = name;
  in.email = name + "@example.com";
  in.password = kPassword;
  auto registered = co_await p.auth.register_user(std::move(in), "127.0.0.1");
  if (!registered) throw std::runtime_error("fuzz world: cannot register " + name);
  co_return registered->user;
}

boost::asio::awaitable<void> seed(World& w) {
  auto& p = *w.parts;
  w.alice = co_await add_user(p, "alice");
  auto bob = co_await add_user(p, "bob");
  auto carol = co_await add_user(p, "carol");
  store::UserChanges staff;
  staff.is_staff = true;
  co_await p.store->users().update(carol.id, staff);

  chats::CreateChatInput group;
  group.type = "group";
  group.name = "general";
  group.member_ids = std::vector<std::int64_t>{bob.id};
  auto created = co_await p.chats.create(w.alice.id, std::move(group));
  if (!created) throw std::runtime_error("fuzz world: cannot create the group chat");
  w.group_chat = created->chat.chat.id;

  chats::CreateChatInput direct;
  direct.type = "private";
  direct.member_ids = std::vector<std::int64_t>{bob.id};
  if (!co_await p.chats.create(w.alice.id, std::move(direct))) {
    throw std::runtime_error("fuzz world: cannot create the private chat");
  }

  for (const char* text : {"hello world", "see you"}) {
    chats::SendInput message;
    message.chat_id = w.group_chat;
    message.text = text;
    if (!co_await p.messages.send(w.alice.id, std::move(message))) {
      throw std::runtime_error("fuzz world: cannot send the first messages");
    }
  }

  const std::int64_t now = now_seconds();
  for (const store::UserRecord* user : {&w.alice, &bob, &carol}) {
    auth::TokenClaims claims;
    claims.type = auth::TokenType::access;
    claims.user_id = user->id;
    claims.issued_at = now;
    claims.expires_at = now + std::int64_t{10} * 365 * 86400;
    claims.jti = auth::JwtCodec::new_jti();
    p.tokens["<" + user->username + ">"] = p.jwt.encode(claims);
  }
}

}  // namespace

std::string World::with_tokens(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto open = text.find('<', pos);
    if (open == std::string_view::npos) break;
    const auto close = text.find('>', open);
    if (close == std::string_view::npos) break;
    const auto it = parts->tokens.find(text.substr(open, close - open + 1));
    out.append(text.substr(pos, open - pos));
    if (it != parts->tokens.end()) {
      out.append(it->second);
      pos = close + 1;
    } else {
      out += '<';
      pos = open + 1;
    }
  }
  out.append(text.substr(pos));
  return out;
}

World& world() {
  static World* w = [] {
    // Errors still show (a 500 is logged before the target reports it); the rest is noise.
    spdlog::set_level(spdlog::level::err);
    auto* made = new World;  // NOLINT: lives until exit, like the services' threads
    made->parts = new World::Parts(made->io);  // NOLINT
    made->app = &made->parts->app;
    made->app_any_host = &made->parts->app_any_host;
    made->events = &made->parts->events;
    made->run(seed(*made));
    return made;
  }();
  return *w;
}

}  // namespace chat::fuzz
