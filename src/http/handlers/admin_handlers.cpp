// /api/admin/...: the admin panel's API. The staff rule lives in admin::AdminService.
#include "admin/admin_service.hpp"
#include "chat/wire.hpp"
#include "http/drf.hpp"
#include "http/handlers/authed.hpp"
#include "http/handlers/routes.hpp"
#include "http/handlers/user_json.hpp"
#include "http/router.hpp"

namespace chat::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

constexpr int kDefaultPage = 50;
constexpr int kMaxPage = 200;

PageRequest page_request(const Request& req, FieldErrors& errors) {
  PageRequest page;
  page.search = query_text(req, "search", errors).value_or("");
  page.limit = static_cast<int>(query_int(req, "limit", kDefaultPage, 1, kMaxPage));
  page.offset = query_int(req, "offset", 0, 0, INT64_MAX / 2);
  return page;
}

json::object chat_overview_json(const store::ChatOverview& o) {
  return {{"id", o.chat.id},
          {"type", store::chat_type_name(o.chat.type)},
          {"name", o.chat.name},
          {"created_at", format_iso8601(o.chat.created_at)},
          {"member_count", o.member_count},
          {"message_count", o.message_count},
          {"last_message_id", o.chat.last_message_id > 0 ? json::value(o.chat.last_message_id)
                                                         : json::value(nullptr)}};
}

awaitable<Response> list_users(Services& s, Request& req, const RouteParams& /*params*/,
                               const store::UserRecord& me) {
  FieldErrors errors;  // reported only to staff, after the service's check
  const PageRequest page = page_request(req, errors);
  admin::UserQuery q{page.search, page.limit, page.offset, std::move(errors)};
  auto users = co_await s.admin.users(me, std::move(q));
  if (!users) co_return error_response(users.error());
  json::array results;
  for (const auto& v : users->users) results.push_back(admin_user_json(v.user, v.online));
  co_return json_response(200, limit_offset_page(req, page, users->count, std::move(results)));
}

awaitable<Response> get_user(Services& s, Request& /*req*/, const RouteParams& p,
                             const store::UserRecord& me) {
  auto user = co_await s.admin.user(me, p.ids[0]);
  if (!user) co_return error_response(user.error());
  co_return json_response(200, admin_user_json(user->user, user->online));
}

awaitable<Response> update_user(Services& s, Request& req, const RouteParams& p,
                                const store::UserRecord& me, const json::object& body) {
  admin::UserChanges in;
  in.errors = std::move(req.body_errors);
  FieldReader f(body, in.errors);
  in.is_active = f.boolean("is_active", false);
  in.is_staff = f.boolean("is_staff", false);
  auto user = co_await s.admin.update_user(me, p.ids[0], std::move(in));
  if (!user) co_return error_response(user.error());
  co_return json_response(200, admin_user_json(user->user, user->online));
}

awaitable<Response> list_chats(Services& s, Request& req, const RouteParams& /*params*/,
                               const store::UserRecord& me) {
  FieldErrors errors;  // reported only to staff, after the service's check
  const PageRequest page = page_request(req, errors);
  admin::ChatQuery q{page.search, page.limit, page.offset, std::move(errors)};
  auto chats = co_await s.admin.chats(me, std::move(q));
  if (!chats) co_return error_response(chats.error());
  json::array results;
  for (const auto& c : chats->chats) results.push_back(chat_overview_json(c));
  co_return json_response(200, limit_offset_page(req, page, chats->count, std::move(results)));
}

awaitable<Response> get_chat(Services& s, Request& /*req*/, const RouteParams& p,
                             const store::UserRecord& me) {
  auto chat = co_await s.admin.chat(me, p.ids[0]);
  if (!chat) co_return error_response(chat.error());
  json::object o = chat_overview_json(chat->overview);
  json::array members;
  for (const auto& m : chat->members) members.push_back(chats::member_json(m));
  o["members"] = std::move(members);
  co_return json_response(200, o);
}

awaitable<Response> list_messages(Services& s, Request& req, const RouteParams& /*params*/,
                                  const store::UserRecord& me) {
  // Parse errors travel in the query: the service answers 403 to non-staff before them.
  admin::MessageQuery q;
  q.chat_id = query_integer(req, "chat", q.errors);
  q.before = query_integer(req, "before", q.errors, 0);
  q.limit =
      static_cast<int>(query_integer(req, "limit", q.errors, 1, kMaxPage).value_or(kDefaultPage));
  q.q = query_text(req, "q", q.errors).value_or("");
  auto page = co_await s.admin.messages(me, std::move(q));
  if (!page) co_return error_response(page.error());
  json::array results;
  for (std::size_t i = 0; i < page->messages.size(); ++i) {
    results.push_back(chats::message_json(page->messages[i], me.id, page->watermarks[i]));
  }
  co_return json_response(
      200, json::object{{"results", std::move(results)}, {"has_more", page->has_more}});
}

awaitable<Response> delete_message(Services& s, Request& /*req*/, const RouteParams& p,
                                   const store::UserRecord& me) {
  auto done = co_await s.admin.delete_message(me, p.ids[0]);
  if (!done) co_return error_response(done.error());
  co_return Response::empty(204);
}

awaitable<Response> stats(Services& s, Request& /*req*/, const RouteParams& /*params*/,
                          const store::UserRecord& me) {
  auto n = co_await s.admin.stats(me);
  if (!n) co_return error_response(n.error());
  co_return json_response(200, json::object{{"users_total", n->users_total},
                                            {"users_online", n->users_online},
                                            {"sockets", n->sockets},
                                            {"chats_total", n->chats_total},
                                            {"messages_total", n->messages_total},
                                            {"messages_per_minute", n->messages_per_minute}});
}

}  // namespace

void add_admin_routes(Router& r, Services& s) {
  r.add(Method::get, "/api/admin/users/", authed(s, list_users));
  r.add(Method::get, "/api/admin/users/{id}/", authed(s, get_user));
  r.add(Method::patch, "/api/admin/users/{id}/", authed_body_after_lookup(s, update_user));
  r.add(Method::get, "/api/admin/chats/", authed(s, list_chats));
  r.add(Method::get, "/api/admin/chats/{id}/", authed(s, get_chat));
  r.add(Method::get, "/api/admin/messages/", authed(s, list_messages));
  r.add(Method::del, "/api/admin/messages/{id}/", authed(s, delete_message));
  r.add(Method::get, "/api/admin/stats/", authed(s, stats));
}

}  // namespace chat::http
