#include "auth/auth_service.hpp"
#include "http/drf.hpp"
#include "http/handlers/authed.hpp"
#include "http/handlers/password_field.hpp"
#include "http/handlers/routes.hpp"
#include "http/handlers/user_json.hpp"
#include "http/router.hpp"
#include "users/online_users.hpp"
#include "users/user_service.hpp"

namespace chat::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

awaitable<bool> is_online(Services& s, std::int64_t user_id) {
  std::vector<std::int64_t> ids{user_id};
  auto online = co_await s.online.online(std::move(ids));
  co_return !online.empty() && online[0];
}

awaitable<Response> get_me(Services& s, Request& /*req*/, const RouteParams& /*params*/,
                           const store::UserRecord& me) {
  const bool online = co_await is_online(s, me.id);
  co_return json_response(200, own_user_json(me, online));
}

awaitable<Response> update_me(Services& s, Request& req, const RouteParams& /*params*/,
                              const store::UserRecord& me, const json::object& body) {
  users::ProfileChanges in;
  FieldReader f(body, in.errors);
  in.email = f.string("email", {.required = false, .max_length = 254});
  in.password = f.string("password", {.required = false, .max_length = auth::kMaxPasswordLength});
  in.current_password = password_field(f, body, "current_password", false);
  auto updated =
      co_await s.users.update_profile(me, req.session, std::move(in), req.client_address);
  if (!updated) co_return error_response(updated.error());
  const bool online = co_await is_online(s, updated->id);
  co_return json_response(200, own_user_json(*updated, online));
}

awaitable<Response> list_users(Services& s, Request& req, const RouteParams& /*params*/,
                               const store::UserRecord& /*me*/) {
  users::UserListQuery q;
  FieldErrors errors;
  q.search = query_text(req, "search", errors).value_or("");
  if (!errors.empty()) co_return error_response(Error::validation(std::move(errors)));
  q.limit = static_cast<int>(query_int(req, "limit", users::UserService::kDefaultPageSize, 1,
                                       users::UserService::kMaxPageSize));
  q.offset = query_int(req, "offset", 0, 0, INT64_MAX / 2);
  auto page = co_await s.users.list(q);
  if (!page) co_return error_response(page.error());
  std::vector<std::int64_t> ids;
  for (const auto& u : page->users) ids.push_back(u.id);
  auto online = co_await s.online.online(std::move(ids));
  json::array results;
  for (std::size_t i = 0; i < page->users.size(); ++i) {
    results.push_back(public_user_json(page->users[i], i < online.size() && online[i]));
  }
  co_return json_response(
      200, limit_offset_page(req, {q.search, q.limit, q.offset}, page->count, std::move(results)));
}

awaitable<Response> get_user(Services& s, Request& /*req*/, const RouteParams& p,
                             const store::UserRecord& /*me*/) {
  const std::int64_t id = p.ids[0];
  auto user = co_await s.users.get(id);
  if (!user) co_return error_response(user.error());
  const bool online = co_await is_online(s, user->id);
  co_return json_response(200, public_user_json(*user, online));
}

}  // namespace

void add_user_routes(Router& r, Services& s) {
  r.add(Method::get, "/api/users/", authed(s, list_users));
  r.add(Method::get, "/api/users/me/", authed(s, get_me));
  r.add(Method::patch, "/api/users/me/", authed_body(s, update_me));
  r.add(Method::put, "/api/users/me/", authed_body(s, update_me));
  r.add(Method::get, "/api/users/{id}/", authed(s, get_user));
}

}  // namespace chat::http
