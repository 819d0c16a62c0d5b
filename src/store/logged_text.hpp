// The event log keeps no text a message no longer has (NewEvent::message_id): when a
// message is edited or deleted, the payloads already logged for it are rewritten with its
// text as it now is. One rewrite for both stores, so their replays are byte for byte alike.
#pragma once

#include <string>
#include <string_view>

namespace chat::store {

// `payload` with its top-level "text" member set to `text`, every other member as it was
// and in its place. A payload that is not a JSON object with a "text" member comes back
// unchanged.
std::string with_logged_text(std::string_view payload, std::string_view text);

}  // namespace chat::store
