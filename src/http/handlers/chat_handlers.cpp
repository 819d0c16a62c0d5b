#include "chat/chat_service.hpp"
#include "chat/wire.hpp"
#include "http/drf.hpp"
#include "http/handlers/bearer.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"

namespace chat::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

json::object member_json(const store::MemberRecord& m) {
  return {{"id", m.user_id}, {"username", m.username}, {"role", store::role_name(m.role)}};
}

awaitable<Response> list_chats(Services& s, Request& req) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto chats = co_await s.chats.list(me->id);
  if (!chats) co_return error_response(chats.error());
  json::array out;
  for (const auto& c : *chats) out.push_back(chats::chat_json(c, me->id));
  co_return json_response(200, out);
}

awaitable<Response> create_chat(Services& s, Request& req) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  chats::CreateChatInput in;
  FieldReader f(*body, in.errors);
  in.type = f.string("type");
  in.name = f.string("name", {.required = false, .allow_blank = true});
  in.member_ids = f.id_list("member_ids", false);
  auto created = co_await s.chats.create(me->id, std::move(in));
  if (!created) co_return error_response(created.error());
  co_return json_response(created->created ? 201 : 200, chats::chat_json(created->chat, me->id));
}

awaitable<Response> get_chat(Services& s, Request& req, std::int64_t id) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto chat = co_await s.chats.get(me->id, id);
  if (!chat) co_return error_response(chat.error());
  co_return json_response(200, chats::chat_json(*chat, me->id));
}

awaitable<Response> rename_chat(Services& s, Request& req, std::int64_t id) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  FieldErrors errors;
  auto name = FieldReader(*body, errors).string("name", {.required = false, .allow_blank = true});
  auto chat = co_await s.chats.rename(me->id, id, std::move(name), std::move(errors));
  if (!chat) co_return error_response(chat.error());
  co_return json_response(200, chats::chat_json(*chat, me->id));
}

awaitable<Response> delete_chat(Services& s, Request& req, std::int64_t id) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto done = co_await s.chats.remove(me->id, id);
  if (!done) co_return error_response(done.error());
  co_return Response::empty(204);
}

awaitable<Response> add_member(Services& s, Request& req, std::int64_t id) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  chats::MemberInput in;
  FieldReader f(*body, in.errors);
  in.user_id = f.integer("user_id");
  in.role = f.string("role", {.required = false});
  auto member = co_await s.chats.add_member(me->id, id, std::move(in));
  if (!member) co_return error_response(member.error());
  co_return json_response(201, member_json(*member));
}

awaitable<Response> change_role(Services& s, Request& req, std::int64_t id, std::int64_t user_id) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  chats::MemberInput in;
  in.role = FieldReader(*body, in.errors).string("role", {.required = false});
  auto member = co_await s.chats.change_role(me->id, id, user_id, std::move(in));
  if (!member) co_return error_response(member.error());
  co_return json_response(200, member_json(*member));
}

awaitable<Response> remove_member(Services& s, Request& req, std::int64_t id,
                                  std::int64_t user_id) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto done = co_await s.chats.remove_member(me->id, id, user_id);
  if (!done) co_return error_response(done.error());
  co_return Response::empty(204);
}

awaitable<Response> mark_read(Services& s, Request& req, std::int64_t id) {
  auto me = co_await authenticate(s.auth, req);
  if (!me) co_return error_response(me.error());
  auto body = parse_body(req);
  if (!body) co_return error_response(body.error());
  FieldErrors errors;
  auto value = FieldReader(*body, errors).integer("last_read_message_id");
  if (value && *value < 0)
    errors.add("last_read_message_id", "Ensure this value is greater than or equal to 0.");
  if (!errors.empty()) co_return error_response(Error::validation(std::move(errors)));
  auto unread = co_await s.chats.mark_read(me->id, id, *value);
  if (!unread) co_return error_response(unread.error());
  co_return json_response(200, json::object{{"unread_count", *unread}});
}

}  // namespace

void add_chat_routes(Router& r, Services& s) {
  r.add(Method::get, "/api/chats/",
        [&s](Request& req, const RouteParams&) { return list_chats(s, req); });
  r.add(Method::post, "/api/chats/",
        [&s](Request& req, const RouteParams&) { return create_chat(s, req); });
  r.add(Method::get, "/api/chats/{id}/",
        [&s](Request& req, const RouteParams& p) { return get_chat(s, req, p.ids[0]); });
  for (Method m : {Method::put, Method::patch}) {
    r.add(m, "/api/chats/{id}/",
          [&s](Request& req, const RouteParams& p) { return rename_chat(s, req, p.ids[0]); });
  }
  r.add(Method::del, "/api/chats/{id}/",
        [&s](Request& req, const RouteParams& p) { return delete_chat(s, req, p.ids[0]); });
  r.add(Method::post, "/api/chats/{id}/members/",
        [&s](Request& req, const RouteParams& p) { return add_member(s, req, p.ids[0]); });
  r.add(
      Method::patch, "/api/chats/{id}/members/{user_id}/",
      [&s](Request& req, const RouteParams& p) { return change_role(s, req, p.ids[0], p.ids[1]); });
  r.add(Method::del, "/api/chats/{id}/members/{user_id}/",
        [&s](Request& req, const RouteParams& p) {
          return remove_member(s, req, p.ids[0], p.ids[1]);
        });
  r.add(Method::post, "/api/chats/{id}/read/",
        [&s](Request& req, const RouteParams& p) { return mark_read(s, req, p.ids[0]); });
}

}  // namespace chat::http
