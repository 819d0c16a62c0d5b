// What a replay reads besides the log: the reader's own view of each chat whose chat
// object one of its events carries (chat_created, chat_updated). Those objects' per-member
// fields (`last_message`, `unread_count`, `last_read_message_id`) are filled in from it,
// as they are when the replay is read (event_for_viewer): what the log holds of them was
// true when the event was committed, and a message since edited, deleted or hidden by
// the reader must not come back through it.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <vector>

#include "store/chat_records.hpp"

namespace chat::store {
class ChatStore;
}

namespace chat::chats {

// One store read for them all; the chats the reader has left are not among the views.
boost::asio::awaitable<std::vector<store::MemberView>> replay_views(
    store::ChatStore& chats, std::int64_t viewer, const std::vector<store::EventRecord>& events);

}  // namespace chat::chats
