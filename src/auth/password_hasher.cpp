#include "auth/password_hasher.hpp"

#include <sodium.h>

#include <boost/asio/thread_pool.hpp>

#include <charconv>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "common/offload.hpp"

namespace chat::auth {

namespace {

// A hash as libsodium writes it, "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (salt and
// hash in unpadded base64), in the parts crypto_pwhash takes: one lane, a salt of its size,
// and a cost and length within crypto_pwhash's bounds, so that computing it can fail only
// for want of memory.
struct Argon2idHash {
  std::uint64_t kib = 0;
  std::uint64_t ops = 0;
  std::string salt;
  std::string hash;
};

// The decimal number after `prefix`, written as libsodium writes it (no leading zero).
std::optional<std::uint64_t> number_after(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return std::nullopt;
  s.remove_prefix(prefix.size());
  if (s.size() > 1 && s[0] == '0' && s[1] >= '0' && s[1] <= '9') return std::nullopt;
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  s.remove_prefix(static_cast<std::size_t>(end - s.data()));
  return n;
}

std::optional<std::string> base64_decode(std::string_view in) {
  std::string out(in.size(), '\0');
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), in.data(),
                        in.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
      end != in.data() + in.size()) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

std::optional<Argon2idHash> parse_argon2id(std::string_view s) {
  Argon2idHash h;
  auto kib = number_after(s, "$argon2id$v=19$m=");
  auto ops = kib ? number_after(s, ",t=") : std::nullopt;
  if (!ops || !s.starts_with(",p=1$")) return std::nullopt;
  s.remove_prefix(5);
  const auto dollar = s.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  auto salt = base64_decode(s.substr(0, dollar));
  auto hash = base64_decode(s.substr(dollar + 1));
  if (!salt || !hash || salt->size() != crypto_pwhash_SALTBYTES ||
      hash->size() < crypto_pwhash_BYTES_MIN || hash->size() > 64 ||
      *kib * 1024 < crypto_pwhash_MEMLIMIT_MIN || *kib > UINT32_MAX ||
      *kib * 1024 > crypto_pwhash_MEMLIMIT_MAX || *ops < crypto_pwhash_OPSLIMIT_MIN ||
      *ops > crypto_pwhash_OPSLIMIT_MAX) {
    return std::nullopt;
  }
  h.kib = *kib;
  h.ops = *ops;
  h.salt = std::move(*salt);
  h.hash = std::move(*hash);
  return h;
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
  // The cost is within libsodium's bounds (the settings' own) and passwords are at most
  // 4,096 characters: a failure is for want of memory.
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), cost.ops, cost.memory_bytes,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw HashMemoryUnavailable("no memory for a password hash");
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
  if (encoded_hash.empty() || encoded_hash.size() >= crypto_pwhash_STRBYTES ||
      encoded_hash.find('\0') != std::string::npos || password.size() > crypto_pwhash_PASSWD_MAX) {
    return false;
  }
  // libsodium 1.0.18's own check fails a hash whose memory it could not get as it fails a
  // wrong password, and a false for a password not judged would refuse the right one and
  // count it against the account. Computed here from the hash's parts, all within
  // crypto_pwhash's bounds, the work can fail only for want of memory (errno is not read:
  // the allocator's free() after argon2's failed mmap need not keep it).
  if (auto h = parse_argon2id(encoded_hash)) {
    std::string computed(h->hash.size(), '\0');
    if (crypto_pwhash(reinterpret_cast<unsigned char*>(computed.data()), computed.size(),
                      password.data(), password.size(),
                      reinterpret_cast<const unsigned char*>(h->salt.data()), h->ops, h->kib * 1024,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
      throw HashMemoryUnavailable("no memory to verify a password hash");
    }
    return sodium_memcmp(computed.data(), h->hash.data(), computed.size()) == 0;
  }
  // Any other form (more lanes, another salt size: chatd writes none) by libsodium's check.
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
