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

  auto confirmed = co_await auth_.confirm_password(me, std::move(*in.current_password),
                                                   client_address, "current_password");
  if (!confirmed) co_return std::move(confirmed).error();

  store::UserChanges changes;
  changes.email = std::move(in.email);
  if (in.password) changes.password_hash = co_await hasher_.hash(*in.password);
  changes.unless_password_changed_from = me.password_hash;
  // A new password ends every other session of the user, in the change's transaction:
  // the change never commits without it. The caller's goes on.
  if (in.password) changes.end_sessions = auth_.session_end(session);
  auto updated = co_await store_.users().update(me.id, std::move(changes));
  if (!updated) {
    // The password was changed since it was checked (another change confirmed with the
    // same one came first): the current password given is no longer the current one.
    if (co_await store_.users().find_by_id(me.id)) {
      co_return Error::field("current_password", "Wrong password.");
    }
    co_return Error::not_found();
  }
  auth_.sessions_ended(me.id, updated->ended_sessions);
  co_return std::move(updated->user);
}

namespace {

// Python's str.replace(from, to), for unescaping a quoted term.
std::string replaced(std::string text, std::string_view from, std::string_view to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// DRF's search_smart_split (3.15): terms apart at whitespace, commas trimmed from their
// ends; a term in matching quotes is taken without them (unescape_string_literal), any
// other is split again at commas. (Django's smart_split keeps a quoted phrase with spaces
// whole; split here, its halves keep a quote each, and either way no username holds a
// space or a quote, so it matches no one.)
std::vector<std::string> search_terms(std::string_view text) {
  std::vector<std::string> terms;
  for (std::string_view part : unicode::split(text)) {
    while (!part.empty() && part.front() == ',') part.remove_prefix(1);
    while (!part.empty() && part.back() == ',') part.remove_suffix(1);
    if (!part.empty() && (part.front() == '"' || part.front() == '\'') &&
        part.front() == part.back()) {
      const std::string quote(1, part.front());
      std::string inner(part.substr(1, part.size() >= 2 ? part.size() - 2 : 0));
      terms.push_back(replaced(replaced(std::move(inner), "\\" + quote, quote), "\\\\", "\\"));
      continue;
    }
    for (std::size_t start = 0; start <= part.size();) {
      const auto comma = std::min(part.find(',', start), part.size());
      if (comma > start) terms.emplace_back(part.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return terms;
}

}  // namespace

boost::asio::awaitable<Result<store::UserPage>> UserService::list(UserListQuery q) {
  // DRF's SearchFilter over "^username": every term a prefix of the username,
  // case-insensitively. Terms that are all prefixes of one username are prefixes of the
  // longest of them, so that is the one prefix to look for; terms that are not match no one.
  std::vector<std::string> keys;
  for (const auto& term : search_terms(q.search)) keys.push_back(auth::username_key(term));
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
