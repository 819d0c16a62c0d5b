// Base64url without padding (RFC 4648, section 5), as a JWT's parts are written.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace chat::auth {

// The bytes `in` encodes, or nullopt when it is not base64url as libsodium's
// sodium_base642bin (URLSAFE_NO_PADDING) accepts it: only the 64 letters, no padding, no
// length of 4n + 1, and the bits left over in the last letter all zero. (libsodium 1.0.18
// also reads some bytes above 0x7F as letters; here they are refused, as no token chatd
// signs has one and such a token fails its signature anyway.) A table lookup per
// letter: sodium's decoder, written to take the same time whatever the letters, cost a
// reconnect storm about 3 % of its instructions verifying the access tokens of sockets
// (which are not secret from the client that sends them).
std::optional<std::string> base64url_decode(std::string_view in);

}  // namespace chat::auth
