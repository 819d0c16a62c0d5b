// The Users section of API.md: one's own profile, changing e-mail and password, and
// reading other users (never their e-mail).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>

#include "auth/password_attempt.hpp"
#include "common/result.hpp"
#include "store/store.hpp"

namespace chat::auth {
class AuthService;
class PasswordHasher;
}  // namespace chat::auth

namespace chat::users {

struct ProfileChanges {
  std::optional<std::string> email;
  std::optional<std::string> password;
  std::optional<auth::PasswordAttempt> current_password;
  FieldErrors errors;  // from parsing, as in auth::RegistrationInput
};

struct UserListQuery {
  std::string search;  // username prefix, case-insensitive
  int limit = 50;
  std::int64_t offset = 0;
};

class UserService {
 public:
  static constexpr int kDefaultPageSize = 50;
  static constexpr int kMaxPageSize = 200;

  UserService(store::Store& store, auth::AuthService& auth, auth::PasswordHasher& hasher);

  // `session`: the caller's login session, which a password change leaves going.
  boost::asio::awaitable<Result<store::UserRecord>> update_profile(const store::UserRecord& me,
                                                                   std::string session,
                                                                   ProfileChanges changes,
                                                                   std::string client_address);
  boost::asio::awaitable<Result<store::UserPage>> list(UserListQuery query);
  // An active user by id; 404 otherwise.
  boost::asio::awaitable<Result<store::UserRecord>> get(std::int64_t id);

 private:
  store::Store& store_;
  auth::AuthService& auth_;
  auth::PasswordHasher& hasher_;
};

}  // namespace chat::users
