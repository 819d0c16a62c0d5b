#include "auth/password_hasher.hpp"

#include <sodium.h>

#include <boost/asio/thread_pool.hpp>

#include <sys/mman.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <stdexcept>

#include "common/offload.hpp"

namespace chat::auth {

namespace {

// Whether the memory an encoded Argon2 hash asks for ("$argon2id$v=19$m=19456,t=2,p=1$...",
// m in KiB) can be mapped now. A hash without a readable cost is not one libsodium could
// compute either: nothing to ask for.
bool memory_available(const std::string& encoded_hash) {
  const auto at = encoded_hash.find("$m=");
  if (at == std::string::npos) return true;
  std::uint64_t kib = 0;
  const char* first = encoded_hash.data() + at + 3;
  const auto [end, ec] = std::from_chars(first, encoded_hash.data() + encoded_hash.size(), kib);
  if (ec != std::errc() || kib == 0 || kib > (std::uint64_t{1} << 32)) return true;
  const std::size_t bytes = static_cast<std::size_t>(kib) * 1024;
  void* probe = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe == MAP_FAILED) return errno != ENOMEM;
  munmap(probe, bytes);
  return true;
}

}  // namespace

struct PasswordHasher::Pool {
  explicit Pool(int threads) : pool(static_cast<std::size_t>(threads)) {}
  boost::asio::thread_pool pool;
};

PasswordHasher::PasswordHasher(int threads, HashCost cost)
    : pool_(std::make_unique<Pool>(threads)), cost_(cost) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  unsigned char random[24];
  randombytes_buf(random, sizeof random);
  char hex[49];
  sodium_bin2hex(hex, sizeof hex, random, sizeof random);
  decoy_ = hash_now(hex, cost_);
}

PasswordHasher::~PasswordHasher() {
  pool_->pool.join();
}

std::string PasswordHasher::hash_now(const std::string& password, HashCost cost) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  char out[crypto_pwhash_STRBYTES];
  errno = 0;
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), cost.ops, cost.memory_bytes,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    if (errno == ENOMEM) throw HashMemoryUnavailable("no memory for a password hash");
    throw std::runtime_error("a password could not be hashed");
  }
  return out;
}

std::string PasswordHasher::unusable_hash() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string out = "!";
  for (int i = 0; i < 40; ++i) out += kAlphabet[randombytes_uniform(sizeof kAlphabet - 1)];
  return out;
}

bool PasswordHasher::verify_now(const std::string& encoded_hash, const std::string& password) {
  // Hashes are NUL-terminated strings for libsodium; anything else is not ours.
  if (encoded_hash.empty() || encoded_hash.size() >= crypto_pwhash_STRBYTES) return false;
  if (crypto_pwhash_str_verify(encoded_hash.c_str(), password.data(), password.size()) == 0) {
    return true;
  }
  // A hash whose memory could not be had fails as a mismatch does (libsodium 1.0.18 says
  // EINVAL for both), but leaves the password unjudged: a false would refuse the right
  // password and count it against the account. So a failure asks whether that memory can
  // be had now; only wrong passwords pay for the question (a mapping never touched).
  if (!memory_available(encoded_hash)) {
    throw HashMemoryUnavailable("no memory to verify a password hash");
  }
  return false;
}

boost::asio::awaitable<std::string> PasswordHasher::hash(std::string password) {
  // The work is a named variable: g++ 12 miscompiles aggregate and lambda prvalues passed
  // by value inside a co_await expression (README, "Coroutine rule").
  auto work = [cost = cost_, p = std::move(password)] { return hash_now(p, cost); };
  co_return co_await offload(pool_->pool.get_executor(), std::move(work));
}

boost::asio::awaitable<bool> PasswordHasher::verify(std::string encoded_hash,
                                                    std::string password) {
  auto work = [h = std::move(encoded_hash), p = std::move(password)] { return verify_now(h, p); };
  co_return co_await offload(pool_->pool.get_executor(), std::move(work));
}

}  // namespace chat::auth
