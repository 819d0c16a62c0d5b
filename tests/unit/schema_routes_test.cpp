// The OpenAPI document served at /api/schema/ and the router never drift apart: every
// route the server registers is in the document, and every operation of the document is a
// route of the server.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <filesystem>
#include <set>

#include "admin/admin_service.hpp"
#include "auth/auth_service.hpp"
#include "auth/jwt_codec.hpp"
#include "auth/password_hasher.hpp"
#include "auth/rate_limiter.hpp"
#include "auth/request_throttle.hpp"
#include "chat/chat_service.hpp"
#include "chat/message_service.hpp"
#include "config/settings.hpp"
#include "http/documents.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"
#include "http/static_files.hpp"
#include "realtime/broker.hpp"
#include "realtime/presence.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "users/user_service.hpp"

using namespace chat;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "get /api/users/{id}/" for every route of the real server, built as `serve` builds it.
std::set<std::string> server_routes() {
  const auto scratch =
      std::filesystem::temp_directory_path() / ("chatd-schema-" + std::to_string(::getpid()));
  std::filesystem::create_directories(scratch);
  config::DatabaseSettings db;
  db.sqlite_path = (scratch / "db.sqlite3").string();
  auto store = store::sqlite::open_store(db);
  auth::PasswordHasher hasher(1);
  auto limiter = auth::make_memory_rate_limiter();
  const auth::JwtCodec jwt(std::string(64, 'k'));
  auth::AuthService auth(*store, hasher, *limiter, jwt, auth::AuthSettings{});
  users::UserService users(*store, auth, hasher);
  chats::ChatService chat_service(*store);
  chats::MessageService messages(*store, chat_service);
  auto broker = realtime::make_in_process_broker();
  realtime::PresenceAnnouncer announcer(*store, *broker);
  auto presence = realtime::make_local_presence(announcer, std::chrono::milliseconds(0));
  admin::AdminService admin(*store, auth, *presence, messages, nullptr);
  auth::RequestThrottle throttle(*limiter, 0, 0);
  http::Services services{auth,   users, *presence, chat_service, messages,
                          *store, admin, throttle,  nullptr};
  http::Router router;
  http::add_all_routes(router, services);
  std::set<std::string> out;
  for (const auto& [pattern, method] : router.routes()) {
    out.insert(lower(http::method_name(method)) + " " + pattern);
  }
  // The pages served from the source tree's web/ folder.
  http::StaticFiles pages;
  http::mount_web_pages(pages, std::string(CHATD_SOURCE_DIR) + "/web");
  for (const auto& page : pages.pages()) out.insert("get " + page);
  std::filesystem::remove_all(scratch);
  return out;
}

std::set<std::string> schema_operations(const boost::json::object& doc) {
  static const std::set<std::string> verbs{"get",   "put",  "post",   "delete",
                                           "patch", "head", "options"};
  std::set<std::string> out;
  for (const auto& [path, item] : doc.at("paths").as_object()) {
    for (const auto& [verb, op] : item.as_object()) {
      if (verbs.contains(std::string(verb)))
        out.insert(std::string(verb) + " " + std::string(path));
    }
  }
  return out;
}

}  // namespace

TEST(Schema, DocumentsAreValidJson) {
  auto openapi = boost::json::parse(embedded::openapi_document());
  ASSERT_TRUE(openapi.is_object());
  EXPECT_TRUE(openapi.as_object().at("openapi").as_string().starts_with("3."));
  auto asyncapi = boost::json::parse(embedded::asyncapi_document());
  ASSERT_TRUE(asyncapi.is_object());
  EXPECT_TRUE(asyncapi.as_object().contains("asyncapi"));
}

TEST(Schema, EveryRouteIsDocumentedAndEveryOperationIsServed) {
  const auto routes = server_routes();
  auto doc = boost::json::parse(embedded::openapi_document());
  const auto operations = schema_operations(doc.as_object());
  ASSERT_GT(routes.size(), 20U);
  for (const auto& r : routes) EXPECT_TRUE(operations.contains(r)) << "not in the schema: " << r;
  for (const auto& o : operations) EXPECT_TRUE(routes.contains(o)) << "not served: " << o;
}
