// The Argon2id cost of new password hashes, as the settings give it: the same for hashes
// made by the server and by the management commands, so that no account's login takes a
// different time for where its password was set.
#pragma once

#include <cstddef>

#include "auth/password_hasher.hpp"
#include "config/settings.hpp"

namespace chat::app {

inline auth::HashCost hash_cost(const config::Settings& s) {
  return {static_cast<unsigned long long>(s.password_hash_ops),
          static_cast<std::size_t>(s.password_hash_memory_kib) * 1024};
}

}  // namespace chat::app
