// Argon2id password hashes (libsodium), computed on a small pool of threads of their own:
// a hash costs tens of milliseconds and 19 MiB on purpose, and must never hold up an
// I/O thread serving other requests.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <stdexcept>
#include <string>

namespace chat::auth {

// Thrown when the memory a hash asks for cannot be had just now (each costs its own, and an
// old hash may ask for more than new ones do). It says nothing of the password: the
// transports answer 503, and a login attempt it cut short is not counted as a failure.
class HashMemoryUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct HashCost {
  // OWASP's minimum for Argon2id: 19 MiB of memory, 2 passes, 1 lane.
  unsigned long long ops = 2;
  std::size_t memory_bytes = 19ULL * 1024 * 1024;
};

class PasswordHasher {
 public:
  PasswordHasher(int threads, HashCost cost = {});
  ~PasswordHasher();
  PasswordHasher(const PasswordHasher&) = delete;
  PasswordHasher& operator=(const PasswordHasher&) = delete;

  // Runs on the hasher threads; the caller resumes on its own executor.
  boost::asio::awaitable<std::string> hash(std::string password);
  boost::asio::awaitable<bool> verify(std::string encoded_hash, std::string password);

  // Blocking forms, for commands and tests. A command hashes without a hasher: building one
  // starts its threads and computes a decoy hash the command never uses.
  [[nodiscard]] static std::string hash_now(const std::string& password, HashCost cost);
  [[nodiscard]] static bool verify_now(const std::string& encoded_hash,
                                       const std::string& password);

  // What Django stores for a user made without a password (`set_unusable_password`): "!"
  // and 40 random letters and digits. No password matches it.
  [[nodiscard]] static std::string unusable_hash();
  [[nodiscard]] static bool is_usable(const std::string& encoded_hash) {
    return !encoded_hash.empty() && encoded_hash.front() != '!';
  }

  // A hash of a random password, to spend the same time on unknown usernames as on known
  // ones (a login must not reveal which usernames exist by answering faster).
  [[nodiscard]] const std::string& decoy_hash() const { return decoy_; }

 private:
  struct Pool;
  std::unique_ptr<Pool> pool_;
  HashCost cost_;
  std::string decoy_;
};

}  // namespace chat::auth
