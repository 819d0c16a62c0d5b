// The event log keeps no text a message no longer has (NewEvent::message_id): when a
// message is edited or deleted, the payloads already logged for it are rewritten with its
// text as it now is. One rewrite for both stores, so their replays are byte for byte alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chat::store {

// `payload` with its top-level "text" member set to `text`, every other member as it was
// and in its place. A payload that is not a JSON object with a "text" member comes back
// unchanged.
std::string with_logged_text(std::string_view payload, std::string_view text);

// A chat event's payload (chat_created, chat_updated) carries messages too: the chat's
// `last_message`, and a rename's newest message and what its hiders see instead. Each copy
// of message `message_id` gets `text`; nullopt when the payload holds no copy of it.
std::optional<std::string> with_message_text_in_chat_event(std::string_view payload,
                                                           std::int64_t message_id,
                                                           std::string_view text);

// The part of a payload a copy of message `message_id` begins with (`"id":42,`): a store
// reads only the chat events whose payload contains it.
std::string message_copy_marker(std::int64_t message_id);

}  // namespace chat::store
