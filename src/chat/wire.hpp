// The API's JSON shapes of chats, messages, pins and events (API.md), shared by REST
// answers, the event log and sockets so each shape is written once.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/chat_records.hpp"

namespace chat::chats {

// The two lowest watermarks of a member list (see store::Watermarks).
store::Watermarks watermarks_of(const std::vector<store::MemberRecord>& members);

// sent / delivered / read: the least advanced of the *other* members decides.
const char* message_status(const store::MessageRecord& m, const store::Watermarks& w);

// `viewer` sees client_id only on their own messages.
boost::json::object message_json(const store::MessageRecord& m, std::int64_t viewer,
                                 const store::Watermarks& w);

// {"results": [message...], "has_more": bool}, the history page `viewer` asked for, as
// JSON text: the same objects as message_json, without building them.
std::string message_page_json(const std::vector<store::MessageRecord>& messages,
                              std::int64_t viewer, const store::Watermarks& w, bool has_more);

// {"id", "username", "role"}, as chats list their members.
boost::json::object member_json(const store::MemberRecord& m);

// The chat as its member `viewer` sees it (unread count, read watermark), as JSON text.
std::string chat_json(const store::ChatSummary& s, std::int64_t viewer);
// [chat...], the chats as their member `viewer` sees them, as JSON text.
std::string chat_list_json(const std::vector<store::ChatSummary>& chats, std::int64_t viewer);

boost::json::object pin_json(const store::PinRecord& p, const store::MessageRecord& m,
                             std::int64_t viewer, const store::Watermarks& w);

// Server events (API.md "Server → client"), as stored in the event log. A new message's
// event is JSON text.
std::string message_event(const store::MessageRecord& m);
boost::json::object edit_event(const store::MessageRecord& m);
boost::json::object delete_event(const store::MessageRecord& m, bool for_me);
boost::json::object read_event(std::int64_t chat_id, std::int64_t user_id, std::int64_t value);
boost::json::object delivered_event(std::int64_t chat_id, std::int64_t user_id, std::int64_t value);
boost::json::object pin_event(const store::PinRecord& p);
boost::json::object unpin_event(const store::PinRecord& p);
// A chat's creation, change or deletion (`chat`: null), for every member or `only_user`.
// With `seen_by`, the chat object is the one that member sees, its per-member fields
// (`last_message`, `unread_count`, `last_read_message_id`) included: for a new chat (the
// same for every member) or an event of that member's own. Without it, it carries none of
// them. Written as text.
store::NewEvent chat_event(const char* type, std::int64_t chat_id, const store::ChatSummary* chat,
                           std::optional<std::int64_t> only_user = std::nullopt,
                           std::optional<std::int64_t> seen_by = std::nullopt);
// A rename's event (chat_updated), for every member: the chat object they share (as
// chat_event without `seen_by`) and, beside it, what each recipient's own fields are made
// of where the event is sent (ChatUpdateView): "last_message", the chat's newest message
// (its client_id kept, for its sender's copies), and "seen_by_hiders", the newest message
// and the pins that the members who hid that message or a pinned one see instead, one
// entry for each distinct view with its "users". Those two keys are the log's, never
// sent as they are.
store::NewEvent chat_update_event(const store::RenamedChat& r);

// A logged chat_updated taken apart for its recipients. A copy is `head` (the event up to
// the chat object's own fields, the same for every recipient), then the variant of
// `variant_of(viewer)` (`,"pinned_message_ids":[...],"last_message":...`: one for most
// members, one for the sender of the newest message, with its client_id, one for each
// group of members who hid something), then read_state() of the recipient (closing the
// chat object), then the event's own closing brace, or a seq, the caller's.
struct ChatUpdateView {
  std::string head;
  std::vector<std::string> variants;  // [0]: most members; [1]: the newest message's sender
  std::int64_t sender = 0;
  std::vector<std::pair<std::int64_t, std::size_t>> hiders;  // (member, variant), by member

  [[nodiscard]] std::size_t variant_of(std::int64_t viewer) const;
  // `,"unread_count":N,"last_read_message_id":M}`
  static std::string read_state(std::int64_t unread, std::int64_t last_read);
};
// nullopt for an event logged without the members' own parts (by an older release): it
// goes out as it was logged.
std::optional<ChatUpdateView> chat_update_view(const boost::json::object& logged);

boost::json::object member_event(const char* type, std::int64_t chat_id, std::int64_t user_id,
                                 store::Role role);

store::NewEvent to_event(std::int64_t chat_id, const boost::json::object& payload,
                         std::optional<std::int64_t> only_user = std::nullopt);
// The message event of a new message, for every member.
store::NewEvent to_event(std::int64_t chat_id, const store::MessageRecord& m);
// The edit event of an edited message, for every member.
store::NewEvent to_edit_event(const store::MessageRecord& m);
// A delete for everyone, passing over the members who hid the message, as an edit does.
store::NewEvent to_delete_event(const store::MessageRecord& m);
// A pin or unpin event: about its message, kept from the members who hid it (live and in
// replays).
store::NewEvent to_pin_event(const boost::json::object& payload, const store::PinRecord& p);

// The events of a batch of delivered watermarks: in chats up to kDeliveredEachMemberUpTo
// members a `delivered` event per member whose watermark moved; in larger ones only a rise
// of the chat's lowest watermark (the moment a message has reached everyone), so one
// message to a 1,000-member group is not 1,000 events to each member. Every door that
// delivers (sockets, history pages, GET /api/events/) logs through it.
std::vector<store::NewEvent> delivered_events(const store::DeliveredBatch& b);

// What a replay of `events` to `viewer` delivers to them: per chat, the newest message
// someone else sent (API.md: delivered once received on a socket or fetched). Both doors
// that replay (the user socket's resume, GET /api/events/) move the watermark with it.
std::vector<std::pair<std::int64_t, std::int64_t>> delivered_by_replay(
    const std::vector<store::EventRecord>& events, std::int64_t viewer);

// A logged event as `viewer` receives it: with its seq, and client_id blanked on other
// people's messages. The chat object of a chat_created or chat_updated gets the viewer's
// own fields from their view of the chat in `views` (replay_views): no message and a
// read state of 0 without one.
boost::json::object event_for_viewer(const store::EventRecord& e, std::int64_t viewer,
                                     const std::vector<store::MemberView>* views = nullptr);

}  // namespace chat::chats
