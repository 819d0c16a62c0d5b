#include "auth/auth_service.hpp"
#include "http/drf.hpp"
#include "http/handlers/password_field.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"

namespace chat::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

awaitable<Response> register_user(Services& s, Request& req) {
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  auth::RegistrationInput in;
  FieldReader f(*body, in.errors);
  in.username = f.string("username", {.max_length = 150});
  in.email = f.string("email", {.max_length = 254});
  in.password = f.string("password", {.max_length = auth::kMaxPasswordLength});
  auto result = co_await s.auth.register_user(std::move(in), req.client_address);
  if (!result) co_return error_response(result.error());
  const auto& user = result->user;
  co_return json_response(201, json::object{{"user", json::object{{"id", user.id},
                                                                  {"username", user.username},
                                                                  {"email", user.email}}},
                                            {"access", result->tokens.access},
                                            {"refresh", result->tokens.refresh}});
}

awaitable<Response> login(Services& s, Request& req) {
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  FieldErrors errors;
  FieldReader f(*body, errors);
  auto username = f.string("username");
  auto password = password_field(f, *body, "password", true);
  if (!errors.empty()) co_return error_response(Error::validation(std::move(errors)));
  auto result =
      co_await s.auth.login(std::move(*username), std::move(*password), req.client_address);
  if (!result) co_return error_response(result.error());
  co_return json_response(200,
                          json::object{{"access", result->access}, {"refresh", result->refresh}});
}

// The refresh token field of refresh and logout; SimpleJWT does not trim it.
std::optional<std::string> refresh_field(const Request& req, Response& error) {
  auto body = parse_body(req);
  if (!body) {
    error = error_response(body.error());
    return std::nullopt;
  }
  FieldErrors errors;
  // SimpleJWT's TokenRefreshSerializer (and the blacklist's) `refresh` is a plain CharField:
  // trimmed, and blank refused.
  auto token = FieldReader(*body, errors).string("refresh");
  if (!errors.empty()) error = error_response(Error::validation(std::move(errors)));
  return token;
}

awaitable<Response> refresh(Services& s, Request& req) {
  Response error;
  auto token = refresh_field(req, error);
  if (!token) co_return error;
  auto result = co_await s.auth.refresh(std::move(*token));
  if (!result) co_return error_response(result.error());
  json::object out{{"access", result->access}};
  if (result->refresh) out["refresh"] = *result->refresh;
  co_return json_response(200, out);
}

awaitable<Response> logout(Services& s, Request& req) {
  Response error;
  auto token = refresh_field(req, error);
  if (!token) co_return error;
  auto result = co_await s.auth.logout(std::move(*token));
  if (!result) co_return error_response(result.error());
  co_return Response::empty(205);
}

}  // namespace

void add_auth_routes(Router& r, Services& s) {
  r.add(Method::post, "/api/auth/register/",
        [&s](Request& req, const RouteParams&) { return register_user(s, req); });
  r.add(Method::post, "/api/auth/login/",
        [&s](Request& req, const RouteParams&) { return login(s, req); });
  r.add(Method::post, "/api/auth/refresh/",
        [&s](Request& req, const RouteParams&) { return refresh(s, req); });
  r.add(Method::post, "/api/auth/logout/",
        [&s](Request& req, const RouteParams&) { return logout(s, req); });
}

}  // namespace chat::http
