#include "chat/chat_service.hpp"
#include "chat/wire.hpp"
#include "http/drf.hpp"
#include "http/handlers/authed.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"

namespace chat::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

awaitable<Response> list_chats(Services& s, Request& /*req*/, const RouteParams& /*params*/,
                               const store::UserRecord& me) {
  auto chats = co_await s.chats.list(me.id);
  if (!chats) co_return error_response(chats.error());
  co_return Response::json(200, chats::chat_list_json(*chats, me.id));
}

awaitable<Response> create_chat(Services& s, Request& /*req*/, const RouteParams& /*params*/,
                                const store::UserRecord& me, const json::object& body) {
  chats::CreateChatInput in;
  FieldReader f(body, in.errors);
  in.type = f.choice("type");
  in.name = f.string("name", {.required = false, .allow_blank = true});
  in.member_ids = f.id_list("member_ids", false);
  auto created = co_await s.chats.create(me.id, std::move(in));
  if (!created) co_return error_response(created.error());
  co_return Response::json(created->created ? 201 : 200, chats::chat_json(created->chat, me.id));
}

awaitable<Response> get_chat(Services& s, Request& /*req*/, const RouteParams& p,
                             const store::UserRecord& me) {
  const std::int64_t id = p.ids[0];
  auto chat = co_await s.chats.get(me.id, id);
  if (!chat) co_return error_response(chat.error());
  co_return Response::json(200, chats::chat_json(*chat, me.id));
}

awaitable<Response> rename_chat(Services& s, Request& req, const RouteParams& p,
                                const store::UserRecord& me, const json::object& body) {
  const std::int64_t id = p.ids[0];
  FieldErrors errors = std::move(req.body_errors);
  auto name = FieldReader(body, errors).string("name", {.required = false, .allow_blank = true});
  const bool partial = req.method == Method::patch;
  auto chat = co_await s.chats.rename(me.id, id, std::move(name), std::move(errors), partial);
  if (!chat) co_return error_response(chat.error());
  co_return Response::json(200, chats::chat_json(*chat, me.id));
}

awaitable<Response> delete_chat(Services& s, Request& /*req*/, const RouteParams& p,
                                const store::UserRecord& me) {
  const std::int64_t id = p.ids[0];
  auto done = co_await s.chats.remove(me.id, id);
  if (!done) co_return error_response(done.error());
  co_return Response::empty(204);
}

awaitable<Response> add_member(Services& s, Request& req, const RouteParams& p,
                               const store::UserRecord& me, const json::object& body) {
  const std::int64_t id = p.ids[0];
  chats::MemberInput in;
  in.errors = std::move(req.body_errors);
  FieldReader f(body, in.errors);
  in.user_id = f.pk("user_id");
  in.role = f.choice("role", false);
  auto member = co_await s.chats.add_member(me.id, id, std::move(in));
  if (!member) co_return error_response(member.error());
  co_return json_response(201, chats::member_json(*member));
}

awaitable<Response> change_role(Services& s, Request& req, const RouteParams& p,
                                const store::UserRecord& me, const json::object& body) {
  const std::int64_t id = p.ids[0];
  const std::int64_t user_id = p.ids[1];
  chats::MemberInput in;
  in.errors = std::move(req.body_errors);
  in.partial = req.method == Method::patch;
  in.role = FieldReader(body, in.errors).choice("role", false);
  auto member = co_await s.chats.change_role(me.id, id, user_id, std::move(in));
  if (!member) co_return error_response(member.error());
  co_return json_response(200, chats::member_json(*member));
}

awaitable<Response> remove_member(Services& s, Request& /*req*/, const RouteParams& p,
                                  const store::UserRecord& me) {
  const std::int64_t id = p.ids[0];
  const std::int64_t user_id = p.ids[1];
  auto done = co_await s.chats.remove_member(me.id, id, user_id);
  if (!done) co_return error_response(done.error());
  co_return Response::empty(204);
}

awaitable<Response> mark_read(Services& s, Request& req, const RouteParams& p,
                              const store::UserRecord& me, const json::object& body) {
  const std::int64_t id = p.ids[0];
  FieldErrors errors = std::move(req.body_errors);
  auto value = FieldReader(body, errors).integer("last_read_message_id");
  auto unread = co_await s.chats.mark_read(me.id, id, value, std::move(errors));
  if (!unread) co_return error_response(unread.error());
  co_return json_response(200, json::object{{"unread_count", unread->unread_count}});
}

}  // namespace

void add_chat_routes(Router& r, Services& s) {
  r.add(Method::get, "/api/chats/", authed(s, list_chats));
  r.add(Method::post, "/api/chats/", authed_body(s, create_chat));
  r.add(Method::get, "/api/chats/{id}/", authed(s, get_chat));
  r.add(Method::put, "/api/chats/{id}/", authed_body_after_lookup(s, rename_chat));
  r.add(Method::patch, "/api/chats/{id}/", authed_body_after_lookup(s, rename_chat));
  r.add(Method::del, "/api/chats/{id}/", authed(s, delete_chat));
  r.add(Method::post, "/api/chats/{id}/members/", authed_body_after_lookup(s, add_member));
  r.add(Method::patch, "/api/chats/{id}/members/{user_id}/",
        authed_body_after_lookup(s, change_role));
  r.add(Method::del, "/api/chats/{id}/members/{user_id}/", authed(s, remove_member));
  r.add(Method::post, "/api/chats/{id}/read/", authed_body_after_lookup(s, mark_read));
}

}  // namespace chat::http
