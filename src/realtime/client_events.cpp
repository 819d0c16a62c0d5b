#include "realtime/client_events.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>

#include "chat/chat_service.hpp"
#include "chat/message_fields.hpp"
#include "chat/message_service.hpp"
#include "chat/wire.hpp"
#include "common/json_input.hpp"
#include "common/serializer_fields.hpp"
#include "common/unicode.hpp"
#include "realtime/typing.hpp"
#include "store/store.hpp"

namespace chat::realtime {
namespace {

namespace json = boost::json;

const char* error_code(ErrorKind k) {
  switch (k) {
    case ErrorKind::validation:
      return "validation";
    case ErrorKind::bad_request:
      return "bad_request";
    case ErrorKind::unauthenticated:
      return "unauthenticated";
    case ErrorKind::forbidden:
      return "forbidden";
    case ErrorKind::not_found:
      return "not_found";
    case ErrorKind::throttled:
      return "throttled";
    case ErrorKind::unavailable:
      return "unavailable";
  }
  return "error";
}

std::string error_frame(const Error& e, std::string_view request_type) {
  std::string detail = e.detail;
  if (e.kind == ErrorKind::validation) {
    for (const auto& [field, messages] : e.fields.items()) {
      for (const auto& m : messages) {
        if (!detail.empty()) detail += "; ";
        // A rule about the event as a whole names no field.
        if (field != "non_field_errors") detail.append(field).append(": ");
        detail.append(m);
      }
    }
  }
  json::object o{{"type", "error"}, {"code", error_code(e.kind)}, {"detail", detail}};
  o["request_type"] = request_type.empty() ? json::value(nullptr) : json::value(request_type);
  return json::serialize(o);
}

// An event's fields, read as REST reads a body's (common/serializer_fields.hpp). An id
// that names nothing (0, or negative) is not found, as over REST.
struct EventFields {
  FieldErrors errors;
  FieldReader read;

  explicit EventFields(const json::object& o) : read(o, errors) {}
  EventFields(const EventFields&) = delete;  // `read` refers to this one's `errors`
  EventFields& operator=(const EventFields&) = delete;
};

}  // namespace

boost::asio::awaitable<std::vector<std::string>> ClientEvents::handle(const ClientContext& ctx,
                                                                      std::string_view text) {
  boost::system::error_code ec;
  json::value parsed = parse_client_json(text, 32, ec);
  if (ec || !parsed.is_object()) {
    co_return std::vector<std::string>{error_frame(Error::bad_request("Not a JSON object."), "")};
  }
  const json::object& o = parsed.as_object();
  const auto* type_value = o.if_contains("type");
  if (type_value == nullptr || !type_value->is_string()) {
    // As a required CharField words it.
    const char* problem = type_value == nullptr   ? "This field is required."
                          : type_value->is_null() ? "This field may not be null."
                                                  : "Not a valid string.";
    co_return std::vector<std::string>{error_frame(Error::field("type", problem), "")};
  }
  const std::string type(type_value->get_string());
  if (type == "ping") co_return std::vector<std::string>{R"({"type":"pong"})"};

  static const std::vector<std::string> known{"message", "typing", "read", "forward",
                                              "edit",    "delete", "pin",  "unpin"};
  if (std::find(known.begin(), known.end(), type) == known.end()) {
    co_return std::vector<std::string>{
        error_frame(Error::bad_request("Unknown event type \"" +
                                       std::string(unicode::prefix(type, 64)) + "\"."),
                    type)};
  }
  bool unavailable = false;
  try {
    co_return co_await handle_event(ctx, o, type);
  } catch (const store::Unavailable&) {
    unavailable = true;  // answered below: no co_await in a handler
  }
  (void)unavailable;
  co_return std::vector<std::string>{error_frame(Error::unavailable(), type)};
}

boost::asio::awaitable<std::vector<std::string>> ClientEvents::handle_event(
    const ClientContext& ctx, const json::object& o, const std::string& type) {
  auto fail = [&](const Error& e) { return std::vector<std::string>{error_frame(e, type)}; };
  EventFields f(o);
  // On the user socket every chat event names its chat; a chat socket has one.
  std::int64_t chat_id = ctx.chat_id;
  if (chat_id == 0) {
    auto named = f.read.integer("chat_id");
    if (!named) co_return fail(Error::validation(std::move(f.errors)));
    chat_id = *named;
  } else if (const auto* v = o.if_contains("chat_id"); v != nullptr && !v->is_null()) {
    // A chat socket's events need not name the chat; one that does must name this one.
    auto named = f.read.integer("chat_id");
    if (!named) co_return fail(Error::validation(std::move(f.errors)));
    if (*named != chat_id)
      co_return fail(Error::bad_request("This socket belongs to another chat."));
  }
  const std::int64_t me = ctx.user.id;

  // The message an event acts on must belong to the event's chat.
  auto message_in_chat = [&](std::int64_t id) -> boost::asio::awaitable<bool> {
    auto m = co_await store_.chats().find_message(id);
    co_return m && m->chat_id == chat_id;
  };
  const Error no_message = Error::not_found("No Message matches the given query.");

  if (type == "message") {
    chats::SendInput in;
    in.chat_id = chat_id;
    in.text = f.read.string("text", chats::kMessageTextField);
    in.client_id = f.read.string("client_id", chats::kClientIdField);
    in.errors = std::move(f.errors);
    auto sent = co_await messages_.send(me, std::move(in));
    if (!sent) co_return fail(sent.error());
    // A retry commits nothing new, so nothing is broadcast: acknowledge it here.
    if (!sent->created) co_return std::vector<std::string>{chats::message_event(sent->message)};
    co_return std::vector<std::string>{};
  }
  if (type == "typing") {
    auto is_typing = f.read.boolean("is_typing");
    if (!is_typing) co_return fail(Error::validation(std::move(f.errors)));
    auto m = co_await chats_.membership(me, chat_id);
    if (!m) co_return fail(m.error());
    typing_.update(chat_id, me, ctx.user.username, *is_typing);
    co_return std::vector<std::string>{};
  }
  if (type == "read") {
    // As over REST, 0 is a valid watermark (nothing read); the service checks the range.
    auto value = f.read.integer("last_read_message_id", false);
    auto read = co_await chats_.mark_read(me, chat_id, value, std::move(f.errors));
    if (!read) co_return fail(read.error());
    // A watermark that did not move commits and broadcasts nothing: the sending socket alone
    // gets it as it stands (REST answers 200), as a retried message or pin is acknowledged.
    if (!read->watermark.changed) {
      co_return std::vector<std::string>{
          json::serialize(chats::read_event(chat_id, me, read->watermark.value))};
    }
    co_return std::vector<std::string>{};
  }
  // The message is looked up first, then the event's other fields are judged, as REST
  // finds the message of its URL before it reads the body (404, then 403, then 400).
  auto message_id = f.read.integer("message_id");
  if (type == "forward") {
    chats::ForwardInput in;
    in.target_chat_id = f.read.integer("target_chat_id");
    in.client_id = f.read.string("client_id", chats::kClientIdField);
    if (!message_id) co_return fail(Error::validation(std::move(f.errors)));
    if (!co_await message_in_chat(*message_id)) co_return fail(no_message);
    in.errors = std::move(f.errors);
    auto sent = co_await messages_.forward(me, *message_id, std::move(in));
    if (!sent) co_return fail(sent.error());
    // The new message goes to the target chat's sockets and the user sockets, the sender's
    // copies with its client_id. A retry broadcasts nothing, and a chat socket of another
    // chat hears nothing of the target chat: such a socket gets the message here when the
    // forward had a client_id (clients that send none, as the original's, see no change).
    const bool heard = ctx.chat_id == 0 || ctx.chat_id == sent->message.chat_id;
    if (!sent->created || (!heard && sent->message.client_id)) {
      co_return std::vector<std::string>{chats::message_event(sent->message)};
    }
    co_return std::vector<std::string>{};
  }
  if (type == "edit") {
    // A missing text is the service's to refuse, as for REST's PUT.
    auto new_text = f.read.string("text", chats::kMessageTextField);
    if (!message_id) co_return fail(Error::validation(std::move(f.errors)));
    if (!co_await message_in_chat(*message_id)) co_return fail(no_message);
    auto edited =
        co_await messages_.edit(me, *message_id, std::move(new_text), std::move(f.errors));
    if (!edited) co_return fail(edited.error());
    co_return std::vector<std::string>{};
  }
  if (type == "delete") {
    auto for_me = f.read.boolean("for_me", false);
    if (!message_id) co_return fail(Error::validation(std::move(f.errors)));
    if (!co_await message_in_chat(*message_id)) co_return fail(no_message);
    if (!f.errors.empty()) co_return fail(Error::validation(std::move(f.errors)));
    const bool mine_only = for_me.value_or(false);
    auto done = co_await messages_.remove(me, *message_id, mine_only);
    if (!done) co_return fail(done.error());
    // Deleted already: nothing is committed or broadcast, so the deletion as it stands is
    // the answer (REST answers 204), as a retried message or pin is acknowledged. A hide
    // reaches only the caller's user sockets (API.md), so a per-chat socket that asked for
    // one gets it as its answer too: it hears back from this request as from any other.
    if (!done->changed || (mine_only && ctx.chat_id != 0)) {
      co_return std::vector<std::string>{
          json::serialize(chats::delete_event(done->message, mine_only))};
    }
    co_return std::vector<std::string>{};
  }
  // pin / unpin
  if (!message_id) co_return fail(Error::validation(std::move(f.errors)));
  if (!co_await message_in_chat(*message_id)) co_return fail(no_message);
  if (type == "pin") {
    auto pinned = co_await messages_.pin(me, *message_id);
    if (!pinned) co_return fail(pinned.error());
    // Already pinned: nothing new is committed or broadcast, so the pin as it stands is the
    // answer (REST answers it with 200), as a message retry is acknowledged above.
    if (!pinned->created)
      co_return std::vector<std::string>{json::serialize(chats::pin_event(pinned->pin))};
  } else {
    auto done = co_await messages_.unpin_message(me, *message_id);
    if (!done) co_return fail(done.error());
  }
  co_return std::vector<std::string>{};
}

}  // namespace chat::realtime
