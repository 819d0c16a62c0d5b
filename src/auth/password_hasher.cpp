#include "auth/password_hasher.hpp"

#include <sodium.h>

#include <boost/asio/thread_pool.hpp>

#include <stdexcept>

#include "common/offload.hpp"

namespace chat::auth {

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
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), cost.ops, cost.memory_bytes,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw std::runtime_error("out of memory while hashing a password");
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
  return crypto_pwhash_str_verify(encoded_hash.c_str(), password.data(), password.size()) == 0;
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
