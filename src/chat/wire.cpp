#include "chat/wire.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <algorithm>
#include <charconv>
#include <iterator>

#include "common/json_text.hpp"

namespace chat::chats {
namespace json = boost::json;
using namespace store;

namespace {

json::value optional_time(const std::optional<Micros>& t) {
  if (!t) return nullptr;
  return json::value(format_iso8601(*t));
}

// The lowest watermark among members other than `sender`, or nullopt when there are none.
std::optional<std::int64_t> others_lowest(const std::vector<Watermarks::Entry>& lowest,
                                          std::int64_t sender) {
  for (const auto& e : lowest) {
    if (e.user_id != sender) return e.value;
  }
  return std::nullopt;
}

// Builds a json::object, for message_fields.
class ObjectSink {
 public:
  explicit ObjectSink(json::object& o) : o_(o) {}
  void number(std::string_view k, std::int64_t v) { o_.emplace(k, v); }
  void string(std::string_view k, std::string_view v) { o_.emplace(k, v); }
  void boolean(std::string_view k, bool v) { o_.emplace(k, v); }
  void null(std::string_view k) { o_.emplace(k, nullptr); }
  void timestamp(std::string_view k, Micros t) { o_.emplace(k, format_iso8601(t)); }

 private:
  json::object& o_;
};

// API.md's message object, field by field in its order, into either sink: a json::object
// or JSON text (json_text::ObjectWriter).
template <class Sink>
void message_fields(Sink& out, const MessageRecord& m, std::int64_t viewer, const Watermarks& w) {
  out.number("id", m.id);
  out.number("chat", m.chat_id);
  if (m.sender_id == 0) {
    out.null("sender_id");  // the sender's account is gone
  } else {
    out.number("sender_id", m.sender_id);
  }
  out.string("sender", m.sender_username);
  out.string("text", m.text);
  out.timestamp("created_at", m.created_at);
  if (m.edited_at) {
    out.timestamp("edited_at", *m.edited_at);
  } else {
    out.null("edited_at");
  }
  out.boolean("is_edited", m.edited_at.has_value());
  out.boolean("is_deleted", m.is_deleted);
  if (m.forwarded_from) {
    out.number("forwarded_from", *m.forwarded_from);
  } else {
    out.null("forwarded_from");
  }
  if (m.client_id && m.sender_id == viewer) {
    out.string("client_id", *m.client_id);
  } else {
    out.null("client_id");
  }
  out.string("status", message_status(m, w));
}

}  // namespace

Watermarks watermarks_of(const std::vector<MemberRecord>& members) {
  Watermarks w;
  auto pick = [&](auto field) {
    std::vector<Watermarks::Entry> all;
    all.reserve(members.size());
    for (const auto& m : members) all.push_back({m.user_id, m.*field});
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.value < b.value; });
    if (all.size() > 2) all.resize(2);
    return all;
  };
  w.lowest_read = pick(&MemberRecord::last_read_message_id);
  w.lowest_delivered = pick(&MemberRecord::last_delivered_message_id);
  return w;
}

const char* message_status(const MessageRecord& m, const Watermarks& w) {
  const auto read = others_lowest(w.lowest_read, m.sender_id);
  if (!read || *read >= m.id) return "read";  // nobody else to wait for, or all have read
  const auto delivered = others_lowest(w.lowest_delivered, m.sender_id);
  if (delivered && *delivered >= m.id) return "delivered";
  return "sent";
}

json::object message_json(const MessageRecord& m, std::int64_t viewer, const Watermarks& w) {
  json::object o;
  o.reserve(13);
  ObjectSink sink(o);
  message_fields(sink, m, viewer, w);
  return o;
}

std::string message_page_json(const std::vector<MessageRecord>& messages, std::int64_t viewer,
                              const Watermarks& w, bool has_more) {
  std::string out;
  // About 150 bytes of names and punctuation per message, plus its text.
  std::size_t size = 40;
  for (const auto& m : messages) size += 200 + m.text.size() + m.sender_username.size();
  out.reserve(size);
  out += R"({"results":[)";
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) out += ',';
    json_text::ObjectWriter writer(out);
    message_fields(writer, messages[i], viewer, w);
    writer.close();
  }
  out += R"(],"has_more":)";
  out += has_more ? "true}" : "false}";
  return out;
}

namespace {

// `[1,2,3]`, appended to `out`.
void append_ids(std::string& out, const std::vector<std::int64_t>& ids) {
  out += '[';
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    json_text::append_int(out, ids[i]);
  }
  out += ']';
}

// A message as `viewer` sees it, or `null`, appended to `out`.
void append_message_or_null(std::string& out, const std::optional<MessageRecord>& m,
                            std::int64_t viewer, const Watermarks& w) {
  if (!m) {
    out += "null";
    return;
  }
  json_text::ObjectWriter message(out);
  message_fields(message, *m, viewer, w);
  message.close();
}

// A chat's member as chats list them, into either sink (as message_fields).
template <class Sink>
void member_fields(Sink& out, const MemberRecord& m) {
  out.number("id", m.user_id);
  out.string("username", m.username);
  out.string("role", role_name(m.role));
}

// API.md's chat object, appended to `out` as JSON text; the per-member fields only when a
// viewer is given. Written as text: a list of 200 groups of 3,000 members was 600,000
// member objects as a tree, and a node's memory peaked at over 500 MiB for one 28 MB
// answer.
void append_chat(std::string& out, const ChatSummary& s, std::optional<std::int64_t> viewer) {
  json_text::ObjectWriter o(out);
  o.number("id", s.chat.id);
  o.string("type", chat_type_name(s.chat.type));
  o.string("name", s.chat.name);
  o.value_of("members") += '[';
  for (std::size_t i = 0; i < s.members.size(); ++i) {
    if (i > 0) out += ',';
    json_text::ObjectWriter member(out);
    member_fields(member, s.members[i]);
    member.close();
  }
  out += ']';
  o.timestamp("created_at", s.chat.created_at);
  if (viewer) {
    append_message_or_null(o.value_of("last_message"), s.last_message, *viewer,
                           watermarks_of(s.members));
    o.number("unread_count", s.unread_count);
    o.number("last_read_message_id", s.last_read_message_id);
  }
  append_ids(o.value_of("pinned_message_ids"), s.pinned_message_ids);
  o.close();
}

// About what append_chat writes for `s`: names and punctuation, and the last message.
std::size_t chat_text_size(const ChatSummary& s) {
  std::size_t size = 300 + s.chat.name.size() + 20 * s.pinned_message_ids.size();
  for (const auto& m : s.members) size += 40 + m.username.size();
  if (s.last_message) size += 200 + s.last_message->text.size();
  return size;
}

}  // namespace

json::object member_json(const MemberRecord& m) {
  json::object o;
  ObjectSink sink(o);
  member_fields(sink, m);
  return o;
}

std::string chat_json(const ChatSummary& s, std::int64_t viewer) {
  std::string out;
  out.reserve(chat_text_size(s));
  append_chat(out, s, viewer);
  return out;
}

std::string chat_list_json(const std::vector<ChatSummary>& chats, std::int64_t viewer) {
  std::size_t size = 2;
  for (const auto& c : chats) size += chat_text_size(c) + 1;
  std::string out;
  out.reserve(size);
  out += '[';
  for (std::size_t i = 0; i < chats.size(); ++i) {
    if (i > 0) out += ',';
    append_chat(out, chats[i], viewer);
  }
  out += ']';
  return out;
}

json::object pin_json(const PinRecord& p, const MessageRecord& m, std::int64_t viewer,
                      const Watermarks& w) {
  return {{"id", p.id},
          {"chat", p.chat_id},
          {"message", message_json(m, viewer, w)},
          {"pinned_by", p.pinned_by},
          {"pinned_at", format_iso8601(p.pinned_at)}};
}

std::string message_event(const MessageRecord& m) {
  // Written as text (the send path's hottest JSON): a tree of nine members cost a dozen
  // allocations per message on the writer's thread.
  std::string out;
  out.reserve(200 + m.text.size() + m.sender_username.size());
  json_text::ObjectWriter o(out);
  o.string("type", "message");
  o.number("message_id", m.id);
  o.number("chat_id", m.chat_id);
  o.string("text", m.text);
  o.string("sender", m.sender_username);
  o.number("sender_id", m.sender_id);
  o.timestamp("created_at", m.created_at);
  if (m.forwarded_from) {
    o.number("forwarded_from", *m.forwarded_from);
  } else {
    o.null("forwarded_from");
  }
  if (m.client_id) {
    o.string("client_id", *m.client_id);
  } else {
    o.null("client_id");
  }
  o.close();
  return out;
}

json::object edit_event(const MessageRecord& m) {
  return {{"type", "edit"},
          {"chat_id", m.chat_id},
          {"message_id", m.id},
          {"text", m.text},
          {"edited_at", optional_time(m.edited_at)}};
}

json::object delete_event(const MessageRecord& m, bool for_me) {
  json::object o{{"type", "delete"}, {"chat_id", m.chat_id}, {"message_id", m.id}};
  if (for_me) o["for_me"] = true;
  return o;
}

json::object read_event(std::int64_t chat_id, std::int64_t user_id, std::int64_t value) {
  return {{"type", "read"},
          {"chat_id", chat_id},
          {"user_id", user_id},
          {"last_read_message_id", value}};
}

json::object delivered_event(std::int64_t chat_id, std::int64_t user_id, std::int64_t value) {
  return {{"type", "delivered"},
          {"chat_id", chat_id},
          {"user_id", user_id},
          {"last_delivered_message_id", value}};
}

json::object pin_event(const PinRecord& p) {
  return {{"type", "pin"},
          {"chat_id", p.chat_id},
          {"message_id", p.message_id},
          {"pinned_by", p.pinned_by}};
}

json::object unpin_event(const PinRecord& p) {
  return {{"type", "unpin"}, {"chat_id", p.chat_id}, {"message_id", p.message_id}};
}

NewEvent chat_event(const char* type, std::int64_t chat_id, const ChatSummary* chat,
                    std::optional<std::int64_t> only_user, std::optional<std::int64_t> seen_by) {
  std::string out;
  out.reserve(60 + (chat != nullptr ? chat_text_size(*chat) : 0));
  json_text::ObjectWriter o(out);
  o.string("type", type);
  o.number("chat_id", chat_id);
  if (chat != nullptr) append_chat(o.value_of("chat"), *chat, seen_by);
  o.close();
  return {chat_id, only_user, type, std::move(out)};
}

NewEvent chat_update_event(const RenamedChat& r) {
  const ChatSummary& shared = r.shared;
  const Watermarks marks = watermarks_of(shared.members);
  // A member's own fields as JSON members: `"pinned_message_ids":[...],"last_message":...`.
  auto own_fields = [&](const std::vector<std::int64_t>& pins,
                        const std::optional<MessageRecord>& last, std::int64_t viewer) {
    std::string text = R"("pinned_message_ids":)";
    append_ids(text, pins);
    text += R"(,"last_message":)";
    append_message_or_null(text, last, viewer, marks);
    return text;
  };
  // Members who hid the same things see the same (a spam message hidden by thousands):
  // one entry for each distinct view, naming its members.
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> groups;
  for (const auto& h : r.seen_by_hiders) {
    std::string fields = own_fields(h.pinned_message_ids, h.last_message, h.user_id);
    auto g = std::find_if(groups.begin(), groups.end(),
                          [&](const auto& x) { return x.first == fields; });
    if (g == groups.end()) {
      groups.emplace_back(std::move(fields), std::vector<std::int64_t>{});
      g = std::prev(groups.end());
    }
    g->second.push_back(h.user_id);
  }
  std::string out;
  out.reserve(200 + chat_text_size(shared));
  json_text::ObjectWriter o(out);
  o.string("type", "chat_updated");
  o.number("chat_id", shared.chat.id);
  append_chat(o.value_of("chat"), shared, std::nullopt);
  // Its client_id kept: the sender's copies show it.
  append_message_or_null(o.value_of("last_message"), shared.last_message,
                         shared.last_message ? shared.last_message->sender_id : 0, marks);
  o.value_of("seen_by_hiders") += '[';
  for (std::size_t i = 0; i < groups.size(); ++i) {
    if (i > 0) out += ',';
    out += R"({"users":)";
    append_ids(out, groups[i].second);
    out += ',';
    out += groups[i].first;
    out += '}';
  }
  out += ']';
  o.close();
  return {shared.chat.id, std::nullopt, "chat_updated", std::move(out)};
}

std::size_t ChatUpdateView::variant_of(std::int64_t viewer) const {
  const auto hider = std::lower_bound(hiders.begin(), hiders.end(), viewer,
                                      [](const auto& h, std::int64_t id) { return h.first < id; });
  if (hider != hiders.end() && hider->first == viewer) return hider->second;
  return viewer == sender ? 1 : 0;
}

std::string ChatUpdateView::read_state(std::int64_t unread, std::int64_t last_read) {
  std::string out = R"(,"unread_count":)";
  json_text::append_int(out, unread);
  out += R"(,"last_read_message_id":)";
  json_text::append_int(out, last_read);
  out += '}';
  return out;
}

std::optional<ChatUpdateView> chat_update_view(const json::object& logged) {
  const auto* last = logged.if_contains("last_message");
  const auto* chat_value = logged.if_contains("chat");
  const auto* chat_id = logged.if_contains("chat_id");
  if (last == nullptr || chat_value == nullptr || !chat_value->is_object() || chat_id == nullptr ||
      !chat_id->is_int64()) {
    return std::nullopt;
  }
  ChatUpdateView v;
  json::object chat = chat_value->as_object();
  json::value pins = json::array();
  if (auto* p = chat.if_contains("pinned_message_ids")) pins = *p;
  chat.erase("pinned_message_ids");
  v.head = R"({"type":"chat_updated","chat_id":)";
  json_text::append_int(v.head, chat_id->get_int64());
  v.head += R"(,"chat":)";
  v.head += json::serialize(chat);
  v.head.pop_back();  // the chat object's closing brace: the member's fields come first
  auto fields = [](const json::value& pin_ids, const json::value& message) {
    std::string text = R"(,"pinned_message_ids":)";
    text += json::serialize(pin_ids);
    text += R"(,"last_message":)";
    text += json::serialize(message);
    return text;
  };
  json::value others = *last;
  if (last->is_object()) {
    if (const auto* id = last->as_object().if_contains("sender_id");
        id != nullptr && id->is_int64())
      v.sender = id->get_int64();
    others.as_object()["client_id"] = nullptr;
  }
  v.variants.push_back(fields(pins, others));
  v.variants.push_back(fields(pins, *last));
  if (const auto* h = logged.if_contains("seen_by_hiders"); h != nullptr && h->is_array()) {
    for (const auto& group : h->as_array()) {
      if (!group.is_object()) continue;
      const auto& g = group.as_object();
      const auto* users = g.if_contains("users");
      if (users == nullptr || !users->is_array()) continue;
      const json::value none;
      const auto* own_pins = g.if_contains("pinned_message_ids");
      const auto* own_last = g.if_contains("last_message");
      v.variants.push_back(
          fields(own_pins != nullptr ? *own_pins : pins, own_last != nullptr ? *own_last : none));
      for (const auto& u : users->as_array()) {
        if (u.is_int64()) v.hiders.emplace_back(u.get_int64(), v.variants.size() - 1);
      }
    }
    std::sort(v.hiders.begin(), v.hiders.end());
  }
  return v;
}

json::object member_event(const char* type, std::int64_t chat_id, std::int64_t user_id, Role role) {
  return {{"type", type}, {"chat_id", chat_id}, {"user_id", user_id}, {"role", role_name(role)}};
}

NewEvent to_event(std::int64_t chat_id, const MessageRecord& m) {
  return {chat_id, std::nullopt, "message", message_event(m), m.id};
}

NewEvent to_edit_event(const MessageRecord& m) {
  return {m.chat_id, std::nullopt, "edit", json::serialize(edit_event(m)), m.id};
}

NewEvent to_delete_event(const MessageRecord& m) {
  NewEvent e = to_event(m.chat_id, delete_event(m, false));
  e.message_id = m.id;
  return e;
}

NewEvent to_pin_event(const json::object& payload, const PinRecord& p) {
  NewEvent e = to_event(p.chat_id, payload);
  e.message_id = p.message_id;
  return e;
}

NewEvent to_event(std::int64_t chat_id, const json::object& payload,
                  std::optional<std::int64_t> only_user) {
  return {chat_id, only_user, std::string(payload.at("type").as_string()),
          json::serialize(payload)};
}

std::vector<NewEvent> delivered_events(const DeliveredBatch& b) {
  std::vector<NewEvent> out;
  if (b.member_count <= store::kDeliveredEachMemberUpTo) {
    for (const auto& c : b.changes) {
      out.push_back(to_event(c.chat_id, delivered_event(c.chat_id, c.user_id, c.value)));
    }
  } else if (b.lowest_after > b.lowest_before && !b.changes.empty()) {
    const auto& last =
        *std::min_element(b.changes.begin(), b.changes.end(),
                          [](const auto& x, const auto& y) { return x.value < y.value; });
    out.push_back(to_event(b.chat_id, delivered_event(b.chat_id, last.user_id, last.value)));
  }
  return out;
}

std::vector<std::pair<std::int64_t, std::int64_t>> delivered_by_replay(
    const std::vector<EventRecord>& events, std::int64_t viewer) {
  std::vector<std::pair<std::int64_t, std::int64_t>> newest;  // (chat, message), few chats
  for (const auto& e : events) {
    if (e.type != "message") continue;
    const json::value v = json::parse(e.payload);
    const auto& o = v.as_object();
    const auto* sender = o.if_contains("sender_id");
    const auto* id = o.if_contains("message_id");
    if (id == nullptr || !id->is_int64()) continue;
    if (sender != nullptr && sender->is_int64() && sender->get_int64() == viewer) continue;
    auto at = std::find_if(newest.begin(), newest.end(),
                           [&](const auto& n) { return n.first == e.chat_id; });
    if (at == newest.end()) {
      newest.emplace_back(e.chat_id, id->get_int64());
    } else {
      at->second = std::max(at->second, id->get_int64());
    }
  }
  return newest;
}

json::object event_for_viewer(const EventRecord& e, std::int64_t viewer,
                              const std::vector<MemberView>* views) {
  json::value v = json::parse(e.payload);
  json::object& o = v.as_object();
  if (e.type == "chat_created" || e.type == "chat_updated") {
    const MemberView* view = nullptr;
    if (views != nullptr) {
      for (const auto& s : *views) {
        if (s.chat_id == e.chat_id) view = &s;
      }
    }
    // The log's own keys go; the viewer's fields are theirs as they are now (none when the
    // viewer has no view of the chat any more: what the log holds may be out of date).
    o.erase("last_message");
    o.erase("seen_by_hiders");
    json::object& chat = o["chat"].as_object();
    chat["pinned_message_ids"] = json::array();
    if (view != nullptr && view->last_message) {
      chat["last_message"] = message_json(*view->last_message, viewer, view->marks);
    } else {
      chat["last_message"] = nullptr;
    }
    if (view != nullptr) chat["pinned_message_ids"] = json::value_from(view->pinned_message_ids);
    chat["unread_count"] = view != nullptr ? view->unread_count : 0;
    chat["last_read_message_id"] = view != nullptr ? view->last_read_message_id : 0;
  }
  if (e.type == "message") {
    const auto* sender = o.if_contains("sender_id");
    if (sender == nullptr || !sender->is_int64() || sender->get_int64() != viewer)
      o["client_id"] = nullptr;
  }
  o["seq"] = e.seq;
  return std::move(o);
}

}  // namespace chat::chats
