#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>
#include <string>
#include <vector>

#include "auth/jwt_codec.hpp"

using namespace chat::auth;

namespace {

const std::string kKey = "unit-test-secret-key-with-enough-characters-0123456789";
constexpr std::int64_t kNow = 1'700'000'000;

TokenClaims claims(TokenType t = TokenType::access) {
  return {t, 42, kNow, kNow + 300, JwtCodec::new_jti()};
}

std::string b64(const std::string& s) {
  std::string out(sodium_base64_ENCODED_LEN(s.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(s.data()),
                    s.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::strlen(out.c_str()));
  return out;
}

}  // namespace

TEST(JwtCodec, RoundTrips) {
  JwtCodec codec(kKey);
  auto c = claims();
  auto token = codec.encode(c);
  auto d = codec.decode(token, TokenType::access, kNow + 1);
  ASSERT_EQ(d.problem, TokenProblem::none);
  EXPECT_EQ(d.claims->user_id, 42);
  EXPECT_EQ(d.claims->jti, c.jti);
  EXPECT_EQ(d.claims->expires_at, kNow + 300);
  EXPECT_EQ(d.claims->issued_at, kNow);
}

TEST(JwtCodec, JtisAreRandomHex) {
  auto a = JwtCodec::new_jti();
  EXPECT_EQ(a.size(), 32U);
  EXPECT_NE(a, JwtCodec::new_jti());
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(JwtCodec, RefusesExpiredWrongTypeAndWrongKey) {
  JwtCodec codec(kKey);
  auto token = codec.encode(claims());
  EXPECT_EQ(codec.decode(token, TokenType::access, kNow + 300).problem, TokenProblem::expired);
  EXPECT_EQ(codec.decode(token, TokenType::refresh, kNow).problem, TokenProblem::wrong_type);
  EXPECT_EQ(JwtCodec("another key").decode(token, TokenType::access, kNow).problem,
            TokenProblem::bad_signature);
}

TEST(JwtCodec, PinsTheAlgorithm) {
  JwtCodec codec(kKey);
  auto token = codec.encode(claims());
  const auto dot = token.find('.');
  const std::string rest = token.substr(dot);
  for (const char* header :
       {R"({"alg":"none","typ":"JWT"})", R"({"alg":"HS512","typ":"JWT"})",
        R"({"alg":"RS256","typ":"JWT"})", R"({"typ":"JWT"})", R"({"alg":"hs256"})"}) {
    EXPECT_EQ(codec.decode(b64(header) + rest, TokenType::access, kNow).problem,
              TokenProblem::bad_algorithm)
        << header;
  }
  // alg "none" with the signature stripped.
  const auto payload_end = token.rfind('.');
  EXPECT_NE(codec
                .decode(b64(R"({"alg":"none"})") + token.substr(dot, payload_end - dot + 1),
                        TokenType::access, kNow)
                .problem,
            TokenProblem::none);
}

TEST(JwtCodec, RefusesMalformedInput) {
  JwtCodec codec(kKey);
  for (const std::string& bad : std::vector<std::string>{
           "", "abc", "a.b", "a.b.c.d", "...", "\xff.\xfe.\xfd", std::string(5000, 'a') + ".b.c"}) {
    EXPECT_NE(codec.decode(bad, TokenType::access, kNow).problem, TokenProblem::none) << bad;
  }
}

TEST(JwtCodec, TamperedPayloadFailsSignature) {
  JwtCodec codec(kKey);
  auto token = codec.encode(claims());
  const auto first = token.find('.');
  const auto second = token.rfind('.');
  auto forged =
      token.substr(0, first + 1) +
      b64(R"({"token_type":"access","exp":1800000000,"iat":1700000000,"jti":"x","user_id":1})") +
      token.substr(second);
  EXPECT_EQ(codec.decode(forged, TokenType::access, kNow).problem, TokenProblem::bad_signature);
}

// A token verified once is remembered by its thread; what it remembers must never let
// through a token the full check would refuse.
TEST(JwtCodec, ARememberedTokenIsStillCheckedForExpiryAndType) {
  JwtCodec codec(kKey);
  auto token = codec.encode(claims());
  ASSERT_EQ(codec.decode(token, TokenType::access, kNow).problem, TokenProblem::none);
  EXPECT_EQ(codec.decode(token, TokenType::access, kNow + 299).problem, TokenProblem::none);
  EXPECT_EQ(codec.decode(token, TokenType::access, kNow + 300).problem, TokenProblem::expired);
  EXPECT_EQ(codec.decode(token, TokenType::refresh, kNow).problem, TokenProblem::wrong_type);
  auto again = codec.decode(token, TokenType::access, kNow);
  ASSERT_EQ(again.problem, TokenProblem::none);
  EXPECT_EQ(again.claims->user_id, 42);
}

TEST(JwtCodec, ARememberedTokenIsNotTrustedByAnotherKey) {
  JwtCodec codec(kKey);
  auto token = codec.encode(claims());
  ASSERT_EQ(codec.decode(token, TokenType::access, kNow).problem, TokenProblem::none);
  // Codecs built one after another in the same place, with other keys.
  for (int i = 0; i < 3; ++i) {
    const JwtCodec other("another key " + std::to_string(i));
    EXPECT_EQ(other.decode(token, TokenType::access, kNow).problem, TokenProblem::bad_signature);
  }
  // A codec with the same key verifies it for itself.
  EXPECT_EQ(JwtCodec(kKey).decode(token, TokenType::access, kNow).problem, TokenProblem::none);
}

TEST(JwtCodec, AlteringARememberedTokenFailsItsSignature) {
  JwtCodec codec(kKey);
  auto token = codec.encode(claims());
  ASSERT_EQ(codec.decode(token, TokenType::access, kNow).problem, TokenProblem::none);
  // Every byte of the signature, changed one at a time.
  const auto signature = token.rfind('.') + 1;
  for (auto i = signature; i < token.size(); ++i) {
    auto altered = token;
    altered[i] = altered[i] == 'A' ? 'B' : 'A';
    EXPECT_NE(codec.decode(altered, TokenType::access, kNow).problem, TokenProblem::none) << i;
  }
  EXPECT_EQ(codec.decode(token, TokenType::access, kNow).problem, TokenProblem::none);
}

namespace {

// Tokens signed elsewhere with the same key (SimpleJWT's): the HMAC of header.payload.
std::string sign(const std::string& header, const std::string& payload) {
  const std::string body = b64(header) + "." + b64(payload);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(kKey.data()),
                              kKey.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(body.data()),
                                body.size());
  crypto_auth_hmacsha256_final(&st, mac);
  return body + "." + b64(std::string(reinterpret_cast<const char*>(mac), sizeof mac));
}

}  // namespace

TEST(JwtCodec, ReadsClaimsAsSimpleJwtWritesThem) {
  JwtCodec codec(kKey);
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  auto payload = [](const std::string& user_id, const std::string& exp) {
    return R"({"token_type":"access","exp":)" + exp +
           R"(,"iat":1700000000,"jti":"abc","user_id":)" + user_id + "}";
  };
  const std::string exp = std::to_string(kNow + 300);
  // user_id as a number, or as a string of digits (SimpleJWT 5.5).
  for (const char* id : {"7", R"("7")"}) {
    auto d = codec.decode(sign(header, payload(id, exp)), TokenType::access, kNow);
    ASSERT_EQ(d.problem, TokenProblem::none) << id;
    EXPECT_EQ(d.claims->user_id, 7) << id;
    EXPECT_EQ(d.claims->expires_at, kNow + 300) << id;
  }
  // exp as a float counts by its whole part, as PyJWT's int() reads it.
  auto f = codec.decode(sign(header, payload("7", exp + ".9")), TokenType::access, kNow);
  ASSERT_EQ(f.problem, TokenProblem::none);
  EXPECT_EQ(f.claims->expires_at, kNow + 300);
  // Anything else is no user id, or no expiry.
  for (const char* id : {R"("7x")", R"("")", R"(" 7")", "7.5", "true", "null", R"(["7"])", "0"}) {
    EXPECT_EQ(codec.decode(sign(header, payload(id, exp)), TokenType::access, kNow).problem,
              TokenProblem::malformed)
        << id;
  }
  for (const std::string& bad : {std::string(R"("1800000000")"), std::string("true")}) {
    EXPECT_EQ(codec.decode(sign(header, payload("7", bad)), TokenType::access, kNow).problem,
              TokenProblem::malformed)
        << bad;
  }
}
