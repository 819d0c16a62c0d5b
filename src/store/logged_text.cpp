#include "store/logged_text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

#include "common/time.hpp"

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

// A message's JSON holds a `"text":` member; a string value cannot (its quotes are
// escaped): a payload without one has no copy to change and is not parsed. A new chat's
// event (no last message yet, thousands of members) is the common case.
bool may_hold_copies(std::string_view payload) {
  return payload.find("\"text\":") != std::string_view::npos;
}

}  // namespace

bool carries_message_copies(std::string_view type) {
  return type == "chat_created" || type == "chat_updated";
}

std::string without_copy_texts(std::string_view payload) {
  if (!may_hold_copies(payload)) return std::string(payload);
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

std::vector<std::int64_t> seqs_skipping_hiders(const std::vector<EventRecord>& events) {
  std::vector<std::int64_t> out;
  for (const auto& e : events) {
    if (skips_hiders(e.type, e.user_id)) out.push_back(e.seq);
  }
  return out;
}

void apply_hiders(std::vector<EventRecord>& events,
                  const std::vector<std::pair<std::int64_t, std::int64_t>>& seq_user) {
  // Both in seq order: one pass.
  auto e = events.begin();
  for (const auto& [seq, user] : seq_user) {
    while (e != events.end() && e->seq < seq) ++e;
    if (e == events.end()) break;
    if (e->seq == seq) e->hidden_from.push_back(user);
  }
}

CopiesInLog::CopiesInLog(std::vector<EventRecord>& events) : events_(events) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (!carries_message_copies(events[i].type) || !may_hold_copies(events[i].payload)) continue;
    boost::system::error_code ec;
    auto value = json::parse(events[i].payload, ec);
    if (ec || !value.is_object()) continue;
    bool copies = false;
    for_each_copy(value.as_object(), [&](json::object& copy) {
      const auto* id = copy.if_contains("id");
      if (id == nullptr || !id->is_int64()) return;
      ids_.push_back(id->get_int64());
      copies = true;
    });
    if (copies) parsed_.emplace_back(i, std::move(value));
  }
  std::sort(ids_.begin(), ids_.end());
  ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
}

void CopiesInLog::apply(const std::unordered_map<std::int64_t, MessageRecord>& now) {
  for (auto& [index, value] : parsed_) {
    for_each_copy(value.as_object(), [&](json::object& copy) {
      const auto* id = copy.if_contains("id");
      if (id == nullptr || !id->is_int64()) return;
      const auto found = now.find(id->get_int64());
      if (found == now.end()) return;
      const MessageRecord& m = found->second;
      // The fields an edit or a deletion changes (wire.cpp: message_fields).
      if (auto* text = copy.if_contains("text")) *text = m.text;
      if (auto* edited_at = copy.if_contains("edited_at")) {
        if (m.edited_at) {
          *edited_at = format_iso8601(*m.edited_at);
        } else {
          *edited_at = nullptr;
        }
      }
      if (auto* is_edited = copy.if_contains("is_edited")) *is_edited = m.edited_at.has_value();
      if (auto* is_deleted = copy.if_contains("is_deleted")) *is_deleted = m.is_deleted;
    });
    events_[index].payload = json::serialize(value);
  }
}

}  // namespace chat::store
