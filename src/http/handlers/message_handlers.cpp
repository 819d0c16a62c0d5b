#include "chat/message_fields.hpp"
#include "chat/message_service.hpp"
#include "chat/wire.hpp"
#include "http/drf.hpp"
#include "http/handlers/authed.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"

namespace chat::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

constexpr std::int64_t kDefaultLimit = 50;
constexpr std::int64_t kMaxLimit = 200;

awaitable<Response> history(Services& s, Request& req, const RouteParams& /*params*/,
                            const store::UserRecord& me) {
  FieldErrors errors;
  auto chat = query_integer(req, "chat", errors);
  if (!chat && !errors.has("chat")) errors.add("chat", "This field is required.");
  chats::HistoryQuery q;
  q.before = query_integer(req, "before", errors, 0);
  q.after = query_integer(req, "after", errors, 0);
  q.limit =
      static_cast<int>(query_integer(req, "limit", errors, 1, kMaxLimit).value_or(kDefaultLimit));
  if (!errors.empty()) co_return error_response(Error::validation(std::move(errors)));
  q.chat_id = *chat;
  auto page = co_await s.messages.history(me.id, q);
  if (!page) co_return error_response(page.error());
  co_return Response::json(
      200, chats::message_page_json(page->messages, me.id, page->watermarks, page->has_more));
}

awaitable<Response> send(Services& s, Request& /*req*/, const RouteParams& /*params*/,
                         const store::UserRecord& me, const json::object& body) {
  chats::SendInput in;
  FieldReader f(body, in.errors);
  in.chat_id = f.integer("chat");
  in.text = f.string("text", chats::kMessageTextField);
  in.client_id = f.string("client_id", chats::kClientIdField);
  auto sent = co_await s.messages.send(me.id, std::move(in));
  if (!sent) co_return error_response(sent.error());
  co_return json_response(sent->created ? 201 : 200,
                          chats::message_json(sent->message, me.id, sent->watermarks));
}

awaitable<Response> edit(Services& s, Request& req, const RouteParams& p,
                         const store::UserRecord& me, const json::object& body) {
  const std::int64_t id = p.ids[0];
  FieldErrors errors = std::move(req.body_errors);
  auto text = FieldReader(body, errors).string("text", chats::kMessageTextField);
  const bool partial = req.method == Method::patch;
  auto edited = co_await s.messages.edit(me.id, id, std::move(text), std::move(errors), partial);
  if (!edited) co_return error_response(edited.error());
  co_return json_response(200, chats::message_json(edited->message, me.id, edited->watermarks));
}

awaitable<Response> remove(Services& s, Request& req, const RouteParams& p,
                           const store::UserRecord& me) {
  const std::int64_t id = p.ids[0];
  const std::string* scope = req.query_param("for");
  if (scope != nullptr && *scope != "me" && *scope != "everyone") {
    co_return error_response(Error::field("for", "\"" + *scope + "\" is not a valid choice."));
  }
  auto done = co_await s.messages.remove(me.id, id, scope != nullptr && *scope == "me");
  if (!done) co_return error_response(done.error());
  co_return Response::empty(204);
}

awaitable<Response> forward(Services& s, Request& req, const RouteParams& p,
                            const store::UserRecord& me, const json::object& body) {
  const std::int64_t id = p.ids[0];
  chats::ForwardInput in;
  in.errors = std::move(req.body_errors);
  FieldReader f(body, in.errors);
  in.target_chat_id = f.integer("target_chat_id");
  in.client_id = f.string("client_id", chats::kClientIdField);
  auto sent = co_await s.messages.forward(me.id, id, std::move(in));
  if (!sent) co_return error_response(sent.error());
  co_return json_response(sent->created ? 201 : 200,
                          chats::message_json(sent->message, me.id, sent->watermarks));
}

awaitable<Response> search(Services& s, Request& req, const RouteParams& /*params*/,
                           const store::UserRecord& me) {
  FieldErrors errors;
  const auto q = query_text(req, "q", errors);
  if (!q && !errors.has("q")) errors.add("q", "This field is required.");
  auto chat = query_integer(req, "chat", errors);
  const int limit =
      static_cast<int>(query_integer(req, "limit", errors, 1, kMaxLimit).value_or(kDefaultLimit));
  if (!errors.empty()) co_return error_response(Error::validation(std::move(errors)));
  auto hits = co_await s.messages.search(me.id, *q, chat, limit);
  if (!hits) co_return error_response(hits.error());
  json::array results;
  for (const auto& h : *hits)
    results.push_back(chats::message_json(h.message, me.id, h.watermarks));
  co_return json_response(200, json::object{{"results", std::move(results)}});
}

awaitable<Response> list_pins(Services& s, Request& req, const RouteParams& /*params*/,
                              const store::UserRecord& me) {
  FieldErrors errors;
  auto chat = query_integer(req, "chat", errors);
  if (!chat && !errors.has("chat")) errors.add("chat", "This field is required.");
  if (!errors.empty()) co_return error_response(Error::validation(std::move(errors)));
  auto pins = co_await s.messages.pins(me.id, *chat);
  if (!pins) co_return error_response(pins.error());
  json::array out;
  for (const auto& p : *pins) out.push_back(chats::pin_json(p.pin, p.message, me.id, p.watermarks));
  co_return json_response(200, out);
}

awaitable<Response> pin(Services& s, Request& /*req*/, const RouteParams& /*params*/,
                        const store::UserRecord& me, const json::object& body) {
  FieldErrors errors;
  auto message_id = FieldReader(body, errors).integer("message_id");
  if (!errors.empty()) co_return error_response(Error::validation(std::move(errors)));
  auto pinned = co_await s.messages.pin(me.id, *message_id);
  if (!pinned) co_return error_response(pinned.error());
  co_return json_response(pinned->created ? 201 : 200,
                          chats::pin_json(pinned->pin, pinned->message, me.id, pinned->watermarks));
}

awaitable<Response> unpin(Services& s, Request& /*req*/, const RouteParams& p,
                          const store::UserRecord& me) {
  const std::int64_t id = p.ids[0];
  auto done = co_await s.messages.unpin(me.id, id);
  if (!done) co_return error_response(done.error());
  co_return Response::empty(204);
}

awaitable<Response> events(Services& s, Request& req, const RouteParams& /*params*/,
                           const store::UserRecord& me) {
  FieldErrors errors;
  const auto since = query_integer(req, "since", errors, 0).value_or(0);
  const int limit = static_cast<int>(query_integer(req, "limit", errors, 1, 1000).value_or(500));
  if (!errors.empty()) co_return error_response(Error::validation(std::move(errors)));
  auto replay = co_await s.messages.events(me.id, since, limit);
  if (!replay) co_return error_response(replay.error());
  json::array results;
  for (const auto& e : replay->events) {
    results.push_back(chats::event_for_viewer(e, me.id, &replay->reader_views));
  }
  co_return json_response(200, json::object{{"results", std::move(results)},
                                            {"seq", replay->last_seq},
                                            {"resync_required", replay->resync_required},
                                            {"has_more", replay->has_more}});
}

}  // namespace

void add_message_routes(Router& r, Services& s) {
  r.add(Method::get, "/api/messages/", authed(s, history));
  r.add(Method::post, "/api/messages/", authed_body(s, send));
  r.add(Method::get, "/api/messages/search/", authed(s, search));
  r.add(Method::put, "/api/messages/{id}/", authed_body_after_lookup(s, edit));
  r.add(Method::patch, "/api/messages/{id}/", authed_body_after_lookup(s, edit));
  r.add(Method::del, "/api/messages/{id}/", authed(s, remove));
  r.add(Method::post, "/api/messages/{id}/forward/", authed_body_after_lookup(s, forward));
  r.add(Method::get, "/api/pinned/", authed(s, list_pins));
  r.add(Method::post, "/api/pinned/", authed_body(s, pin));
  r.add(Method::del, "/api/pinned/{id}/", authed(s, unpin));
  r.add(Method::get, "/api/events/", authed(s, events));
}

}  // namespace chat::http
