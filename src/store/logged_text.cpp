#include "store/logged_text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace chat::store {

namespace json = boost::json;

std::string with_logged_text(std::string_view payload, std::string_view text) {
  boost::system::error_code ec;
  auto value = json::parse(payload, ec);
  if (ec || !value.is_object()) return std::string(payload);
  auto& object = value.as_object();
  auto* member = object.if_contains("text");
  if (member == nullptr) return std::string(payload);
  *member = text;
  return json::serialize(value);
}

namespace {

// Sets the text of `holder[key]` when it is message `id`; whether it was.
bool set_text_of(json::object& holder, std::string_view key, std::int64_t id,
                 std::string_view text) {
  auto* message = holder.if_contains(key);
  if (message == nullptr || !message->is_object()) return false;
  auto& m = message->as_object();
  const auto* own_id = m.if_contains("id");
  auto* own_text = m.if_contains("text");
  if (own_id == nullptr || !own_id->is_int64() || own_id->get_int64() != id ||
      own_text == nullptr) {
    return false;
  }
  *own_text = text;
  return true;
}

}  // namespace

std::optional<std::string> with_message_text_in_chat_event(std::string_view payload,
                                                           std::int64_t message_id,
                                                           std::string_view text) {
  if (payload.find(message_copy_marker(message_id)) == std::string_view::npos) {
    return std::nullopt;
  }
  boost::system::error_code ec;
  auto value = json::parse(payload, ec);
  if (ec || !value.is_object()) return std::nullopt;
  auto& event = value.as_object();
  bool changed = set_text_of(event, "last_message", message_id, text);
  if (auto* chat = event.if_contains("chat"); chat != nullptr && chat->is_object()) {
    changed = set_text_of(chat->as_object(), "last_message", message_id, text) || changed;
  }
  if (auto* hiders = event.if_contains("seen_by_hiders"); hiders != nullptr && hiders->is_array()) {
    for (auto& group : hiders->as_array()) {
      if (!group.is_object()) continue;
      changed = set_text_of(group.as_object(), "last_message", message_id, text) || changed;
    }
  }
  if (!changed) return std::nullopt;
  return json::serialize(value);
}

std::string message_copy_marker(std::int64_t message_id) {
  return "\"id\":" + std::to_string(message_id) + ",";
}

}  // namespace chat::store
