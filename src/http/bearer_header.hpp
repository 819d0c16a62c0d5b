// The Authorization: Bearer header as SimpleJWT's JWTAuthentication.get_raw_token reads it,
// for both doors (REST requests and socket handshakes).
#pragma once

#include <string_view>

#include "common/error.hpp"

namespace chat::http {

// The header split on any run of ASCII whitespace (Python's bytes.split()): `none` when it
// holds no Bearer credentials (absent, empty, another scheme), `token` for
// "Bearer <token>", `malformed` for the Bearer scheme with other than one value after it.
struct BearerHeader {
  enum class Kind { none, token, malformed };
  Kind kind = Kind::none;
  std::string_view token;
};
BearerHeader read_bearer_header(std::string_view header);

// SimpleJWT's answer to a malformed Bearer header.
Error malformed_bearer_header();

}  // namespace chat::http
