// The rules a username, an e-mail address and a password must follow, with Django's
// messages (UnicodeUsernameValidator, EmailValidator and the password validators).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chat::auth {

// The form a username is compared in: lower-cased, so usernames are unique regardless of
// case and "Ann" logs in as "ann".
std::string username_key(std::string_view username);

// Each returns the messages for a bad value, empty when the value is fine.
std::vector<std::string> username_problems(std::string_view username);
std::vector<std::string> email_problems(std::string_view email);
// Django's BaseUserManager.normalize_email, which creating a user applies: the domain part
// lower-cased, the local part kept as written.
std::string normalize_email(std::string_view email);
std::vector<std::string> password_problems(std::string_view password, std::string_view username);

}  // namespace chat::auth
