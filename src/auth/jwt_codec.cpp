#include "auth/jwt_codec.hpp"

#include <jwt.h>
#include <sodium.h>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>

#include "auth/base64url.hpp"

namespace chat::auth {
namespace {

struct JwtDeleter {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

// The header must be a JSON object whose alg is exactly HS256.
TokenProblem check_header(std::string_view token) {
  const auto dot = token.find('.');
  if (dot == std::string_view::npos) return TokenProblem::malformed;
  auto header = base64url_decode(token.substr(0, dot));
  if (!header) return TokenProblem::malformed;
  boost::system::error_code ec;
  auto value = boost::json::parse(*header, ec);
  if (ec || !value.is_object()) return TokenProblem::malformed;
  const auto* alg = value.as_object().if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->as_string() != "HS256") {
    return TokenProblem::bad_algorithm;
  }
  return TokenProblem::none;
}

// The payload's claims as JSON: libjwt 1.10 reads a claim that is not an integer (a
// string, a float) as 0 without saying so, so numbers are read here.
std::optional<boost::json::object> payload_claims(std::string_view token) {
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  auto payload = base64url_decode(token.substr(first + 1, second - first - 1));
  if (!payload) return std::nullopt;
  boost::system::error_code ec;
  auto value = boost::json::parse(*payload, ec);
  if (ec || !value.is_object()) return std::nullopt;
  return std::move(value.as_object());
}

// exp and iat as PyJWT reads them, int(value): a float counts by its whole part.
std::optional<std::int64_t> time_claim(const boost::json::object& claims, std::string_view name) {
  const auto* v = claims.if_contains(name);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_double() && std::isfinite(v->get_double()) && std::abs(v->get_double()) < 9e18) {
    return static_cast<std::int64_t>(v->get_double());
  }
  return std::nullopt;
}

// user_id as SimpleJWT writes it: a number, or its decimal digits in a string (as SimpleJWT
// 5.5 writes every id, and earlier versions ids that are not ints).
std::optional<std::int64_t> user_id_claim(const boost::json::object& claims) {
  const auto* v = claims.if_contains("user_id");
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (!v->is_string()) return std::nullopt;
  const auto& s = v->get_string();
  std::int64_t parsed = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), parsed);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return parsed;
}

// Tokens this thread verified: a client sends the same access token with every request
// for the token's lifetime (5 minutes by default), and verifying it (base64, two JSON
// parses and an HMAC) costs as much as the rest of a small request's work. An entry is
// found only by the same codec and the same bytes of token, so a token altered in any way
// misses and is verified; expiry and type are checked on every use, and whatever else
// decides whether a token may still be used (its session, its user) is the caller's check
// on every request. Direct-mapped: a collision just verifies again.
struct VerifiedToken {
  std::uint64_t codec = 0;  // 0: empty
  std::string token;
  TokenClaims claims;
};
constexpr std::size_t kVerifiedTokens = 512;
thread_local std::array<VerifiedToken, kVerifiedTokens> verified_tokens;

std::atomic<std::uint64_t> next_codec_id{1};

// Expiry, then type, as SimpleJWT checks them.
DecodedToken usable(const TokenClaims& c, TokenType expected, std::int64_t now_seconds) {
  DecodedToken result;
  if (c.expires_at <= now_seconds) {
    result.problem = TokenProblem::expired;
  } else if (c.type != expected) {
    result.problem = TokenProblem::wrong_type;
  } else {
    result.claims = c;
  }
  return result;
}

}  // namespace

JwtCodec::JwtCodec(std::string secret_key)
    : key_(std::move(secret_key)), id_(next_codec_id.fetch_add(1)) {}

const char* token_type_name(TokenType t) {
  return t == TokenType::access ? "access" : "refresh";
}

std::string JwtCodec::new_jti() {
  unsigned char bytes[16];
  randombytes_buf(bytes, sizeof bytes);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, bytes, sizeof bytes);
  return hex;
}

std::string JwtCodec::encode(const TokenClaims& c) const {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::bad_alloc();
  JwtPtr jwt(raw);
  jwt_add_grant(raw, "token_type", token_type_name(c.type));
  jwt_add_grant_int(raw, "exp", static_cast<long>(c.expires_at));
  jwt_add_grant_int(raw, "iat", static_cast<long>(c.issued_at));
  jwt_add_grant(raw, "jti", c.jti.c_str());
  jwt_add_grant_int(raw, "user_id", static_cast<long>(c.user_id));
  if (!c.session.empty()) jwt_add_grant(raw, "sid", c.session.c_str());
  if (jwt_set_alg(raw, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(key_.data()),
                  static_cast<int>(key_.size())) != 0) {
    throw std::runtime_error("jwt_set_alg failed");
  }
  char* encoded = jwt_encode_str(raw);
  if (encoded == nullptr) throw std::runtime_error("jwt_encode_str failed");
  std::string out(encoded);
  std::free(encoded);  // NOLINT: libjwt allocates with malloc
  return out;
}

DecodedToken JwtCodec::decode(std::string_view token, TokenType expected,
                              std::int64_t now_seconds) const {
  // A JWT is three base64url parts; anything else (or something huge) is not worth parsing.
  if (token.size() > 4096 || std::count(token.begin(), token.end(), '.') != 2) {
    return DecodedToken{std::nullopt, TokenProblem::malformed};
  }
  auto& slot = verified_tokens[std::hash<std::string_view>{}(token) % kVerifiedTokens];
  if (slot.codec == id_ && slot.token == token) return usable(slot.claims, expected, now_seconds);
  auto verified = verify(token);
  if (!verified.claims) return verified;
  slot.codec = id_;
  slot.token.assign(token);
  slot.claims = *verified.claims;
  return usable(slot.claims, expected, now_seconds);
}

DecodedToken JwtCodec::verify(std::string_view token) const {
  DecodedToken result;
  if (auto p = check_header(token); p != TokenProblem::none) {
    result.problem = p;
    return result;
  }
  const std::string copy(token);
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, copy.c_str(), reinterpret_cast<const unsigned char*>(key_.data()),
                 static_cast<int>(key_.size())) != 0 ||
      raw == nullptr) {
    result.problem = TokenProblem::bad_signature;
    return result;
  }
  JwtPtr jwt(raw);
  if (jwt_get_alg(raw) != JWT_ALG_HS256) {
    result.problem = TokenProblem::bad_algorithm;
    return result;
  }
  const auto claims = payload_claims(token);
  if (!claims) {
    result.problem = TokenProblem::malformed;
    return result;
  }
  TokenClaims c;
  const char* type = jwt_get_grant(raw, "token_type");
  const char* jti = jwt_get_grant(raw, "jti");
  auto user_id = user_id_claim(*claims);
  auto exp = time_claim(*claims, "exp");
  auto iat = time_claim(*claims, "iat");
  const std::string_view type_sv(type == nullptr ? "" : type);
  if (jti == nullptr || !user_id || !exp || *user_id <= 0 ||
      (type_sv != "access" && type_sv != "refresh")) {
    result.problem = TokenProblem::malformed;
    return result;
  }
  c.type = type_sv == "access" ? TokenType::access : TokenType::refresh;
  c.user_id = *user_id;
  c.expires_at = *exp;
  c.issued_at = iat.value_or(0);
  c.jti = jti;
  if (const char* sid = jwt_get_grant(raw, "sid")) c.session = sid;
  result.claims = std::move(c);
  return result;
}

}  // namespace chat::auth
