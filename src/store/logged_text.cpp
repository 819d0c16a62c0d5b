#include "store/logged_text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

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

// Calls `f(copy)` for each message copy of a chat event: `last_message` of the event and of
// its chat object, and of each entry of `seen_by_hiders` (wire.cpp: chat_event,
// chat_update_event).
template <class F>
void for_each_copy(json::object& event, F f) {
  auto visit = [&](json::object& holder) {
    auto* copy = holder.if_contains("last_message");
    if (copy != nullptr && copy->is_object()) f(copy->as_object());
  };
  visit(event);
  if (auto* chat = event.if_contains("chat"); chat != nullptr && chat->is_object()) {
    visit(chat->as_object());
  }
  if (auto* hiders = event.if_contains("seen_by_hiders"); hiders != nullptr && hiders->is_array()) {
    for (auto& group : hiders->as_array()) {
      if (group.is_object()) visit(group.as_object());
    }
  }
}

}  // namespace

bool carries_message_copies(std::string_view type) {
  return type == "chat_created" || type == "chat_updated";
}

std::string without_copy_texts(std::string_view payload) {
  boost::system::error_code ec;
  auto value = json::parse(payload, ec);
  if (ec || !value.is_object()) return std::string(payload);
  bool changed = false;
  for_each_copy(value.as_object(), [&](json::object& copy) {
    if (auto* text = copy.if_contains("text")) {
      *text = "";
      changed = true;
    }
  });
  return changed ? json::serialize(value) : std::string(payload);
}

std::vector<std::int64_t> copied_message_ids(const std::vector<EventRecord>& events) {
  std::vector<std::int64_t> ids;
  for (const auto& e : events) {
    if (!carries_message_copies(e.type)) continue;
    boost::system::error_code ec;
    auto value = json::parse(e.payload, ec);
    if (ec || !value.is_object()) continue;
    for_each_copy(value.as_object(), [&](json::object& copy) {
      const auto* id = copy.if_contains("id");
      if (id != nullptr && id->is_int64()) ids.push_back(id->get_int64());
    });
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

void put_copy_texts(std::vector<EventRecord>& events,
                    const std::unordered_map<std::int64_t, std::string>& texts) {
  for (auto& e : events) {
    if (!carries_message_copies(e.type)) continue;
    boost::system::error_code ec;
    auto value = json::parse(e.payload, ec);
    if (ec || !value.is_object()) continue;
    bool changed = false;
    for_each_copy(value.as_object(), [&](json::object& copy) {
      const auto* id = copy.if_contains("id");
      auto* text = copy.if_contains("text");
      if (id == nullptr || !id->is_int64() || text == nullptr) return;
      auto found = texts.find(id->get_int64());
      if (found == texts.end()) return;
      *text = found->second;
      changed = true;
    });
    if (changed) e.payload = json::serialize(value);
  }
}

}  // namespace chat::store
