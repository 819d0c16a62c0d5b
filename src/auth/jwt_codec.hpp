// HS256 JSON Web Tokens in SimpleJWT's format: header {"alg":"HS256","typ":"JWT"}, claims
// token_type, exp, iat, jti, user_id (plus our sid). Signing and verification are libjwt's; this
// class pins the algorithm (a token whose header names anything but HS256 is refused before its
// signature is looked at) and checks expiry and type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chat::auth {

enum class TokenType { access, refresh };

struct TokenClaims {
  TokenType type = TokenType::access;
  std::int64_t user_id = 0;
  std::int64_t issued_at = 0;   // seconds
  std::int64_t expires_at = 0;  // seconds
  std::string jti;              // 32 hex characters, like uuid4().hex
  // "sid": the login session the token belongs to (the jti of its first refresh token),
  // so that logging out can end the session's access tokens and sockets too. Empty in
  // tokens issued before sessions were tracked.
  std::string session;
};

enum class TokenProblem {
  none,
  malformed,      // not a JWT, bad base64/JSON, or a claim missing or of the wrong type
  bad_algorithm,  // header alg is not HS256 ("none", RS256, ...)
  bad_signature,
  expired,
  wrong_type,  // a refresh token where an access token is needed, or the reverse
};

struct DecodedToken {
  std::optional<TokenClaims> claims;  // set when problem == none
  TokenProblem problem = TokenProblem::none;
};

class JwtCodec {
 public:
  explicit JwtCodec(std::string secret_key);

  [[nodiscard]] std::string encode(const TokenClaims& claims) const;

  // Verifies algorithm, signature, expiry (against `now_seconds`) and token type. A token
  // this thread has verified recently is not verified again (see jwt_codec.cpp): its
  // expiry and type are still checked on every call.
  [[nodiscard]] DecodedToken decode(std::string_view token, TokenType expected,
                                    std::int64_t now_seconds) const;

  // 128 random bits as 32 hex characters.
  static std::string new_jti();

 private:
  // Signature and claims, without the checks that depend on the time or the caller.
  [[nodiscard]] DecodedToken verify(std::string_view token) const;

  std::string key_;
  // Which codec an entry of the verified-token cache belongs to: codecs with different
  // keys never share entries, even one built where another was destroyed.
  std::uint64_t id_;
};

const char* token_type_name(TokenType t);

}  // namespace chat::auth
