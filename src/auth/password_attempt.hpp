// A password as a client sent it to be checked (a login, a current password).
#pragma once

#include <cstddef>
#include <string>

namespace chat::auth {

// The longest password chatd sets (registration, a change): Argon2 hashes whatever it is
// given, and a megabyte password would cost the hasher threads that much more.
inline constexpr std::size_t kMaxPasswordLength = 4096;

// SimpleJWT's and DRF's password fields are CharFields, which trim, so `text` is trimmed.
// Passwords set before chatd trimmed them may begin or end with spaces: `as_sent`, the text
// untrimmed when it differs, is checked too when `text` does not match.
struct PasswordAttempt {
  std::string text;
  std::string as_sent;
};

}  // namespace chat::auth
