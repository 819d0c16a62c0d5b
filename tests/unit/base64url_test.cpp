// chatd's base64url decoder against libsodium's (URLSAFE_NO_PADDING), which it replaced
// for JWT parts: the same answer for every input, valid or not.
#include <gtest/gtest.h>
#include <sodium.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "auth/base64url.hpp"

namespace {

std::optional<std::string> sodium_decode(const std::string& in) {
  std::string out(in.size(), '\0');
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), in.data(),
                        in.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != in.data() + in.size()) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

std::string sodium_encode(const std::string& bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.find('\0'));
  return out;
}

}  // namespace

TEST(Base64url, DecodesWhatLibsodiumEncodes) {
  ASSERT_GE(sodium_init(), 0);
  std::mt19937 rng(7);
  for (std::size_t n = 0; n < 70; ++n) {
    std::string bytes(n, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng() & 0xFF);
    const std::string text = sodium_encode(bytes);
    EXPECT_EQ(chat::auth::base64url_decode(text), bytes) << text;
  }
  EXPECT_EQ(chat::auth::base64url_decode("eyJhbGciOiJIUzI1NiJ9"), R"({"alg":"HS256"})");
}

TEST(Base64url, RefusesWhatLibsodiumRefuses) {
  for (const std::string& bad :
       std::vector<std::string>{"A", "AAAAA", "QQ==", "QQ=", "QR", "QUF", "Q+8", "Q/8", "Q 8",
                                "QQ\n", std::string("Q\0Q", 3), "QUJD."}) {
    EXPECT_EQ(sodium_decode(bad), std::nullopt) << bad;  // the reference refuses it...
    EXPECT_EQ(chat::auth::base64url_decode(bad), std::nullopt) << bad;  // ...and so must we
  }
  // Bytes above 0x7F: libsodium 1.0.18 reads some as letters (its char is signed); they are
  // no letters, and no token chatd signs has one.
  EXPECT_EQ(chat::auth::base64url_decode("\xC3\xA9QQ"), std::nullopt);
  EXPECT_EQ(chat::auth::base64url_decode("QQ\x80"), std::nullopt);
}

TEST(Base64url, AgreesWithLibsodiumOnEveryShortAsciiText) {
  ASSERT_GE(sodium_init(), 0);
  // Every ASCII text of one to three characters: each character beside the letters'
  // ranges ('@', '[', '`', '{', ':', '/'...) in every position and every leftover.
  std::string text;
  for (int length = 1; length <= 3; ++length) {
    text.assign(static_cast<std::size_t>(length), '\0');
    for (long code = 0; code < (1L << (7 * length)); ++code) {
      for (int i = 0; i < length; ++i)
        text[static_cast<std::size_t>(i)] = static_cast<char>((code >> (7 * i)) & 0x7F);
      ASSERT_EQ(chat::auth::base64url_decode(text), sodium_decode(text)) << code;
    }
  }
}

TEST(Base64url, AgreesWithLibsodiumOnRandomText) {
  ASSERT_GE(sodium_init(), 0);
  // Mostly letters, with any other ASCII character among them, every length up to 40:
  // valid and invalid texts, trailing bits set or not.
  const std::string letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::mt19937 rng(11);
  int valid = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string text(rng() % 41, '\0');
    for (auto& c : text) {
      c = rng() % 32 == 0 ? static_cast<char>(rng() % 128) : letters[rng() % 64];
    }
    const auto expected = sodium_decode(text);
    ASSERT_EQ(chat::auth::base64url_decode(text), expected) << text;
    valid += expected.has_value();
  }
  EXPECT_GT(valid, 20000);  // both kinds were tried
  EXPECT_LT(valid, 180000);
}
