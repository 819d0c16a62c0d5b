// The event log keeps no text a message no longer has.
// - A `message` or `edit` event names its message (NewEvent::message_id): when the message
//   is edited or deleted, the payloads already logged for it are rewritten with its text as
//   it now is (with_logged_text).
// - A chat event (chat_created, chat_updated) carries copies of messages: the chat's
//   `last_message`, and a rename's newest message and what its hiders see instead. The log
//   keeps those copies without their text, so an edit or deletion has nothing to rewrite
//   (an addition's event names every member: a group growing one member at a time logs
//   members^2 bytes, which no edit should have to walk). Live delivery carries the text as
//   committed; a read of the log for delivery (events_since) brings each copy up to date
//   with its message (CopiesInLog). Replays fill in their own copies.
// One set of rewrites for both stores, so their logs are byte for byte alike.
#pragma once

#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/chat_records.hpp"

namespace chat::store {

// `payload` with its top-level "text" member set to `text`, every other member as it was
// and in its place. A payload that is not a JSON object with a "text" member comes back
// unchanged.
std::string with_logged_text(std::string_view payload, std::string_view text);

// Whether events of this type carry copies of messages.
bool carries_message_copies(std::string_view type);
// A chat event's payload as the log keeps it: each copy's "text" empty.
std::string without_copy_texts(std::string_view payload);

// Events read from the log for delivery keep from the members who hid a message what its
// live delivery kept from them (skips_hiders, EventRecord::hidden_from). Without it, a node
// catching up from the log sent a deletion to a member who had hidden the message, and
// took it off their count again.
// The seqs of such events in `events` (empty: no such event, nothing to read), then their
// hiders given as (seq, user) rows in seq order.
std::vector<std::int64_t> seqs_skipping_hiders(const std::vector<EventRecord>& events);
void apply_hiders(std::vector<EventRecord>& events,
                  const std::vector<std::pair<std::int64_t, std::int64_t>>& seq_user);

// Events read from the log for delivery, brought up to date: each copy of a message gets
// the message's text, edit time and deletion as they are now. Each chat event is parsed
// once: first the messages to read (ids), then, once they are read, apply.
class CopiesInLog {
 public:
  explicit CopiesInLog(std::vector<EventRecord>& events);
  // The messages copied (each once; none when no event carries a copy).
  const std::vector<std::int64_t>& ids() const { return ids_; }
  // A copy of a message not in `now` (deleted with its chat) keeps its empty text.
  void apply(const std::unordered_map<std::int64_t, MessageRecord>& now);

 private:
  std::vector<EventRecord>& events_;
  std::vector<std::pair<std::size_t, boost::json::value>> parsed_;  // (index, payload)
  std::vector<std::int64_t> ids_;
};

}  // namespace chat::store
