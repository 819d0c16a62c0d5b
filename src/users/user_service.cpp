#include "users/user_service.hpp"

#include <algorithm>

#include "auth/auth_service.hpp"
#include "auth/credential_rules.hpp"
#include "auth/password_hasher.hpp"
#include "common/unicode.hpp"

namespace chat::users {

UserService::UserService(store::Store& store, auth::AuthService& auth, auth::PasswordHasher& hasher)
    : store_(store), auth_(auth), hasher_(hasher) {}

boost::asio::awaitable<Result<store::UserRecord>> UserService::update_profile(
    const store::UserRecord& me, std::string session, ProfileChanges in,
    std::string client_address) {
  FieldErrors errors = std::move(in.errors);
  if (in.email) {
    for (auto& p : auth::email_problems(*in.email)) errors.add("email", std::move(p));
  }
  if (in.password) {
    for (auto& p : auth::password_problems(*in.password, me.username))
      errors.add("password", std::move(p));
  }
  const bool changes_something = in.email.has_value() || in.password.has_value();
  if (changes_something && !in.current_password && !errors.has("current_password")) {
    errors.add("current_password", "This field is required.");
  }
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  if (!changes_something) co_return me;

  auto confirmed =
      co_await auth_.confirm_password(me, *in.current_password, client_address, "current_password");
  if (!confirmed) co_return std::move(confirmed).error();

  store::UserChanges changes;
  changes.email = std::move(in.email);
  if (in.password) changes.password_hash = co_await hasher_.hash(*in.password);
  auto updated = co_await store_.users().update(me.id, std::move(changes));
  if (!updated) co_return Error::not_found();
  // A new password ends every other session of the user; the caller's goes on.
  if (in.password) co_await auth_.end_other_sessions(me.id, std::move(session));
  co_return std::move(*updated);
}

boost::asio::awaitable<Result<store::UserPage>> UserService::list(UserListQuery q) {
  // DRF's SearchFilter over "^username": commas read as spaces, the text split on
  // whitespace, and every term a prefix of the username, case-insensitively. Terms that
  // are all prefixes of one username are prefixes of the longest of them, so that is the
  // one prefix to look for; terms that are not match no one.
  std::replace(q.search.begin(), q.search.end(), ',', ' ');
  std::vector<std::string> keys;
  for (const auto term : unicode::split(q.search)) keys.push_back(auth::username_key(term));
  std::string longest;
  for (const auto& key : keys) {
    if (key.size() > longest.size()) longest = key;
  }
  for (const auto& key : keys) {
    if (!longest.starts_with(key)) co_return store::UserPage{};
  }
  store::UserFilter filter{std::move(longest)};
  co_return co_await store_.users().list(std::move(filter), q.limit, q.offset);
}

boost::asio::awaitable<Result<store::UserRecord>> UserService::get(std::int64_t id) {
  auto user = co_await store_.users().find_by_id(id);
  if (!user || !user->is_active) co_return Error::not_found("No User matches the given query.");
  co_return std::move(*user);
}

}  // namespace chat::users
