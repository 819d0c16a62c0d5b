// Bearer and refresh tokens as the server reads them (auth::JwtCodec::decode), with a fixed
// key and clock so the seeds' signed tokens stay valid.
//
// Invariants: a token is accepted as at most one type, and when it is, the other type gets
// wrong_type and every other check agrees; accepted claims are sane (positive user, not
// expired, a jti) and survive encode() and decode() again. Claims made from the input's
// bytes survive the same round trip.

#include <sodium.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "auth/jwt_codec.hpp"
#include "fuzz_check.hpp"

namespace {

using chat::auth::DecodedToken;
using chat::auth::JwtCodec;
using chat::auth::TokenClaims;
using chat::auth::TokenProblem;
using chat::auth::TokenType;
using chat::fuzz::require;

constexpr std::int64_t kNow = 1'700'000'000;  // 2023-11-14, before every seed's expiry

const JwtCodec& codec() {
  static const JwtCodec c = [] {
    if (sodium_init() < 0) std::abort();
    return JwtCodec("fuzz-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ");
  }();
  return c;
}

bool same_claims(const TokenClaims& a, const TokenClaims& b) {
  return a.type == b.type && a.user_id == b.user_id && a.issued_at == b.issued_at &&
         a.expires_at == b.expires_at && a.jti == b.jti;
}

void check_round_trip(const TokenClaims& claims, std::string_view why) {
  const std::string token = codec().encode(claims);
  const DecodedToken again = codec().decode(token, claims.type, kNow);
  require(again.problem == TokenProblem::none && again.claims && same_claims(*again.claims, claims),
          why, token);
}

void check_decoded(const DecodedToken& d, TokenType expected, std::string_view token) {
  require(d.claims.has_value() == (d.problem == TokenProblem::none),
          "claims are set exactly when there is no problem", token);
  if (!d.claims) return;
  const TokenClaims& c = *d.claims;
  require(c.type == expected, "a token was accepted as the wrong type", token);
  require(c.user_id > 0, "a token was accepted for user id <= 0", token);
  require(c.expires_at > kNow, "an expired token was accepted", token);
  require(!c.jti.empty(), "a token without jti was accepted", token);
  check_round_trip(c, "accepted claims do not survive encode() and decode()");
}

std::uint64_t read_u64(const std::uint8_t* data, std::size_t size, std::size_t at) {
  std::uint64_t v = 0;
  if (at < size) std::memcpy(&v, data + at, std::min<std::size_t>(8, size - at));
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  const DecodedToken access = codec().decode(token, TokenType::access, kNow);
  const DecodedToken refresh = codec().decode(token, TokenType::refresh, kNow);
  check_decoded(access, TokenType::access, token);
  check_decoded(refresh, TokenType::refresh, token);

  require(!(access.claims && refresh.claims), "a token was accepted as both types", token);
  if (access.claims || refresh.claims) {
    const auto& other = access.claims ? refresh : access;
    require(other.problem == TokenProblem::wrong_type,
            "a token accepted as one type is not wrong_type as the other", token);
  } else if (access.problem != TokenProblem::wrong_type &&
             refresh.problem != TokenProblem::wrong_type) {
    require(access.problem == refresh.problem,
            "checks other than the type disagree between the two types", token);
  }

  // Claims from the input's bytes: any positive user, any unexpired expiry, any issue time.
  TokenClaims made;
  made.type = (read_u64(data, size, 0) & 1) != 0 ? TokenType::refresh : TokenType::access;
  made.user_id = static_cast<std::int64_t>(read_u64(data, size, 0) >> 2) + 1;
  made.expires_at = kNow + 1 + static_cast<std::int64_t>(read_u64(data, size, 8) >> 2);
  made.issued_at = static_cast<std::int64_t>(read_u64(data, size, 16));
  made.jti = JwtCodec::new_jti();
  check_round_trip(made, "claims made from the input do not survive encode() and decode()");
  return 0;
}
