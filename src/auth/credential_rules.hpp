// The rules a username, an e-mail address and a password must follow, with Django's
// messages (UnicodeUsernameValidator, EmailValidator and the password validators).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace chat::auth {

// The form a username is compared in: the lower case of its upper case, so usernames are
// unique regardless of case as Django's `iexact` (UPPER) compares them, "Ann" logs in as
// "ann", and "ΟΔΟΣ", "οδος" and "οδοσ" are one name.
std::string username_key(std::string_view username);

// Each returns the messages for a bad value, empty when the value is fine.
std::vector<std::string> username_problems(std::string_view username);

// A new user's name as Django creates it: checked as given (UnicodeUsernameValidator), then
// normalised to NFKC (AbstractBaseUser.normalize_username), so a look-alike written in
// compatibility characters, such as the fullwidth "ｒｏｏｔ", is the "root" it looks like
// and meets that name's uniqueness. A name of more than 150 characters, as given or in its
// normal form, is refused, and so is a normal form that breaks the rules (Django would
// store it, or fail in the database).
struct NewUsername {
  std::string name;  // the normal form, when `problems` is empty
  std::vector<std::string> problems;
};
NewUsername new_username(std::string_view username);
std::vector<std::string> email_problems(std::string_view email);
// Django's BaseUserManager.normalize_email, which creating a user applies: the domain part
// lower-cased, the local part kept as written.
std::string normalize_email(std::string_view email);
std::vector<std::string> password_problems(std::string_view password, std::string_view username);
// The same, the password being too similar when it equals any of `usernames` (a new name as
// typed and as stored).
std::vector<std::string> password_problems(std::string_view password,
                                           std::initializer_list<std::string_view> usernames);

}  // namespace chat::auth
