#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "auth/password_hasher.hpp"

using namespace chat::auth;

namespace {

constexpr HashCost kSmall{1, std::size_t{64} * 1024};

// The part after the last '$' replaced by `hash` in unpadded base64.
std::string with_hash(const std::string& encoded, const std::string& hash) {
  std::string b64(sodium_base64_ENCODED_LEN(hash.size(), sodium_base64_VARIANT_ORIGINAL_NO_PADDING),
                  '\0');
  sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(hash.data()),
                    hash.size(), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  b64.resize(b64.find('\0'));
  return encoded.substr(0, encoded.rfind('$') + 1) + b64;
}

std::size_t address_space_in_use() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmSize:")) return std::stoull(line.substr(7)) * 1024;
  }
  return 0;
}

}  // namespace

TEST(PasswordHasher, VerifiesTheRightPasswordOnly) {
  const std::string hash = PasswordHasher::hash_now("correct-horse-1", kSmall);
  ASSERT_TRUE(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$")) << hash;
  EXPECT_TRUE(PasswordHasher::verify_now(hash, "correct-horse-1"));
  EXPECT_FALSE(PasswordHasher::verify_now(hash, "correct-horse-2"));
  EXPECT_FALSE(PasswordHasher::verify_now(hash, ""));
  // libsodium's own check agrees on both.
  EXPECT_EQ(crypto_pwhash_str_verify(hash.c_str(), "correct-horse-1", 15), 0);
  EXPECT_NE(crypto_pwhash_str_verify(hash.c_str(), "correct-horse-2", 15), 0);
}

TEST(PasswordHasher, AHashThatIsNotOneMatchesNothing) {
  const std::string hash = PasswordHasher::hash_now("correct-horse-1", kSmall);
  EXPECT_FALSE(
      PasswordHasher::verify_now(with_hash(hash, std::string(32, 'x')), "correct-horse-1"));
  EXPECT_FALSE(PasswordHasher::verify_now(with_hash(hash, "short"), "correct-horse-1"));
  EXPECT_FALSE(PasswordHasher::verify_now(hash.substr(0, hash.size() - 3), "correct-horse-1"));
  EXPECT_FALSE(PasswordHasher::verify_now(hash + "$", "correct-horse-1"));
  // Numbers as libsodium writes them only: it refuses a leading zero, and so does chatd.
  std::string padded = hash;
  padded.replace(padded.find("m=64,"), 5, "m=064,");
  EXPECT_NE(crypto_pwhash_str_verify(padded.c_str(), "correct-horse-1", 15), 0);
  EXPECT_FALSE(PasswordHasher::verify_now(padded, "correct-horse-1"));
  EXPECT_FALSE(PasswordHasher::verify_now(hash + std::string(1, '\0'), "correct-horse-1"));
  EXPECT_FALSE(PasswordHasher::verify_now("$argon2id$v=19$m=64,t=1,p=1$$", "correct-horse-1"));
  EXPECT_FALSE(PasswordHasher::verify_now("pbkdf2_sha256$600000$salt$hash", "correct-horse-1"));
  EXPECT_FALSE(PasswordHasher::verify_now(PasswordHasher::unusable_hash(), "correct-horse-1"));
}

// In a child process whose address space is capped below what the hash asks for, the
// right password is neither accepted nor refused: the hasher says it had no memory.
TEST(PasswordHasherDeathTest, NoMemoryForAHashIsNotAMismatch) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const HashCost cost{1, std::size_t{64} * 1024 * 1024};
  const std::string hash = PasswordHasher::hash_now("correct-horse-1", cost);
  // Exits 0 when `work` says it had no memory, 3 or 4 when it answered true or false.
  rlimit now{};
  if (address_space_in_use() == 0 || getrlimit(RLIMIT_AS, &now) != 0) {
    GTEST_SKIP() << "no /proc/self/status or RLIMIT_AS here";
  }
  auto capped = [now](auto work) {
    const rlimit cap{address_space_in_use() + std::size_t{16} * 1024 * 1024, now.rlim_max};
    if (cap.rlim_cur > cap.rlim_max || setrlimit(RLIMIT_AS, &cap) != 0) _exit(2);
    try {
      _exit(work() ? 3 : 4);
    } catch (const HashMemoryUnavailable&) {
      _exit(0);
    }
  };
  EXPECT_EXIT(capped([&] { return PasswordHasher::verify_now(hash, "correct-horse-1"); }),
              ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(capped([&] { return PasswordHasher::verify_now(hash, "wrong-horse-1"); }),
              ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(capped([&] { return !PasswordHasher::hash_now("correct-horse-1", cost).empty(); }),
              ::testing::ExitedWithCode(0), "");
  EXPECT_TRUE(PasswordHasher::verify_now(hash, "correct-horse-1"));
}
