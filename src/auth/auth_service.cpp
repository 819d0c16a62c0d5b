#include "auth/auth_service.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>

#include "auth/credential_rules.hpp"
#include "auth/password_hasher.hpp"
#include "auth/rate_limiter.hpp"
#include "common/unicode.hpp"
#include "metrics/metrics.hpp"

namespace chat::auth {
namespace {

constexpr const char* kNoActiveAccount = "No active account found with the given credentials";

// SimpleJWT's messages for a token it refuses.
Error invalid_token(TokenProblem problem) {
  return Error::unauthenticated(
      problem == TokenProblem::wrong_type ? "Token has wrong type" : "Token is invalid or expired",
      "token_not_valid");
}

Error blacklisted() {
  return Error::unauthenticated("Token is blacklisted", "token_not_valid");
}

// A login's username can be as long as a request body, and every failure keeps its key
// for the window: past the longest username an account can have (150 characters), only
// the start counts, so failures cost bounded memory (here and in Redis) however long the
// names. Such names belong to no account; sharing a key among them throttles nobody real.
// Counted in characters: two long names in another script that differ near their end
// are two accounts' keys.
std::string login_user_key(const std::string& username_key, const std::string& address) {
  constexpr std::size_t kLongest = 160;
  return "login:user:" + std::string(unicode::prefix(username_key, kLongest)) + "|" + address;
}
std::string login_address_key(const std::string& address) {
  return "login:addr:" + address;
}

// Refresh tokens from before sessions were tracked carry no sid: each is its own session.
std::string session_of(const TokenClaims& refresh) {
  return refresh.session.empty() ? refresh.jti : refresh.session;
}

}  // namespace

AuthService::AuthService(store::Store& store, PasswordHasher& hasher, RateLimiter& limiter,
                         const JwtCodec& jwt, AuthSettings settings)
    : store_(store), hasher_(hasher), limiter_(limiter), jwt_(jwt), settings_(settings) {}

std::string AuthService::issue_access(std::int64_t user_id, std::int64_t now,
                                      const std::string& session) const {
  return jwt_.encode({TokenType::access, user_id, now, now + settings_.access_lifetime,
                      JwtCodec::new_jti(), session});
}

// A login starts a session, named by the jti of its first refresh token; every token
// refreshed or rotated from it carries the same name.
boost::asio::awaitable<std::optional<TokenPair>> AuthService::issue_tokens(
    std::int64_t user_id, std::string password_hash) {
  const std::int64_t now = now_seconds();
  TokenClaims refresh{TokenType::refresh, user_id, now, now + settings_.refresh_lifetime,
                      JwtCodec::new_jti()};
  refresh.session = refresh.jti;
  store::RefreshTokenRecord row{refresh.jti, user_id, now, refresh.expires_at, refresh.session};
  const bool recorded =
      co_await store_.refresh_tokens().record(std::move(row), std::move(password_hash));
  if (!recorded) co_return std::nullopt;
  co_return TokenPair{issue_access(user_id, now, refresh.session), jwt_.encode(refresh)};
}

boost::asio::awaitable<Result<Registration>> AuthService::register_user(
    RegistrationInput in, std::string client_address) {
  if (settings_.register_count > 0) {
    const std::string key = "register:" + client_address;
    // Every attempt counts, as DRF's throttle records each request it lets through.
    const auto counted = co_await limiter_.reserve(key, settings_.register_count,
                                                   settings_.register_window, now_micros());
    if (counted.wait_seconds > 0) {
      metrics::metrics().throttled.with({"register"}).inc();
      co_return Error::throttled(static_cast<int>(counted.wait_seconds));
    }
  }

  FieldErrors errors = std::move(in.errors);
  NewUsername name;
  const Error taken = Error::field("username", "A user with that username already exists.");
  std::string key;
  if (in.username) {
    name = new_username(*in.username);
    for (auto& p : name.problems) errors.add("username", std::move(p));
    // A taken name is reported with the other fields' problems, as DRF's UniqueValidator
    // is one of the field's validators. Checked before the hash, so that it costs none;
    // the unique index decides.
    if (name.problems.empty()) {
      key = username_key(name.name);
      const auto holder = co_await store_.users().find_by_username_key(key);
      if (holder) errors.add("username", "A user with that username already exists.");
    }
  }
  if (in.email) {
    for (auto& p : email_problems(*in.email)) errors.add("email", std::move(p));
  }
  if (in.password) {
    // Compared with the username as typed and as it is stored (its normal form).
    const std::string typed = in.username.value_or("");
    for (auto& p : password_problems(*in.password, {typed, name.name})) {
      errors.add("password", std::move(p));
    }
  }
  if (!errors.empty()) co_return Error::validation(std::move(errors));

  store::NewUser user;
  user.username = std::move(name.name);
  user.username_key = key;
  user.email = normalize_email(*in.email);
  user.password_hash = co_await hasher_.hash(*in.password);
  user.date_joined = now_micros();
  auto created = co_await store_.users().create(std::move(user));
  if (!created) co_return taken;
  auto tokens = co_await issue_tokens(created->id, created->password_hash);
  // Deactivated, or its password changed, in the moment since it was made.
  if (!tokens) co_return Error::unauthenticated(kNoActiveAccount);
  co_return Registration{std::move(*created), std::move(*tokens)};
}

// A refusal by an event counted in the last two seconds may be a check still under way (a
// login that will pass and give its place back): it is asked again every 200 ms for up to
// 2 s before it stands. Logins at once past the limit (a user's devices, users behind one
// NAT) then wait their turn instead of getting 429 for the whole window; guesses past it
// wait too, and are refused.
boost::asio::awaitable<AuthService::LoginAttempt> AuthService::start_login_attempt(
    const std::string& key, const std::string& address) {
  auto executor = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer pause(executor);
  for (int tries = 1;; ++tries) {
    auto attempt = co_await try_login_attempt(key, address);
    const bool recent = attempt.wait_seconds > settings_.login_failure_window - 2;
    if (attempt.wait_seconds == 0 || !recent || tries >= 10) co_return attempt;
    pause.expires_after(std::chrono::milliseconds(200));
    co_await pause.async_wait(boost::asio::use_awaitable);
  }
}

boost::asio::awaitable<AuthService::LoginAttempt> AuthService::try_login_attempt(
    const std::string& key, const std::string& address) {
  const Micros now = now_micros();
  LoginAttempt attempt{0, login_user_key(key, address), {}, login_address_key(address), {}};
  auto by_user = co_await limiter_.reserve(attempt.user_key, settings_.login_failures_per_user,
                                           settings_.login_failure_window, now);
  if (by_user.wait_seconds > 0) co_return LoginAttempt{by_user.wait_seconds, {}, {}, {}, {}};
  auto by_address =
      co_await limiter_.reserve(attempt.address_key, settings_.login_failures_per_address,
                                settings_.login_failure_window, now);
  if (by_address.wait_seconds > 0) {
    co_await limiter_.release(attempt.user_key, std::move(by_user.id));
    co_return LoginAttempt{by_address.wait_seconds, {}, {}, {}, {}};
  }
  attempt.user_event = std::move(by_user.id);
  attempt.address_event = std::move(by_address.id);
  co_return attempt;
}

boost::asio::awaitable<void> AuthService::give_back(LoginAttempt attempt) {
  co_await limiter_.release(std::move(attempt.user_key), std::move(attempt.user_event));
  co_await limiter_.release(std::move(attempt.address_key), std::move(attempt.address_event));
}

template <class T>
boost::asio::awaitable<T> AuthService::checked(LoginAttempt& attempt,
                                               boost::asio::awaitable<T> check) {
  std::optional<T> out;
  std::exception_ptr failure;
  try {
    out = co_await std::move(check);
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    co_await give_back(std::move(attempt));
    std::rethrow_exception(failure);
  }
  co_return std::move(*out);
}

boost::asio::awaitable<AuthService::LoginCheck> AuthService::check_login(std::string key,
                                                                         PasswordAttempt password) {
  LoginCheck out;
  out.user = co_await store_.users().find_by_username_key(key);
  // An unknown name, or a user without a usable password, costs a hash too, so timing
  // does not tell which names exist.
  const bool usable = out.user && PasswordHasher::is_usable(out.user->password_hash);
  std::string hash = usable ? out.user->password_hash : hasher_.decoy_hash();
  const bool matched = co_await matches(std::move(hash), std::move(password));
  out.password_ok = usable && matched;
  co_return out;
}

boost::asio::awaitable<bool> AuthService::matches(std::string hash, PasswordAttempt password) {
  // One longer than any password chatd sets cannot match: no hash is computed for it.
  bool ok = false;
  if (unicode::length(password.text) <= kMaxPasswordLength) {
    ok = co_await hasher_.verify(hash, std::move(password.text));
  }
  if (!ok && !password.as_sent.empty() && unicode::length(password.as_sent) <= kMaxPasswordLength) {
    ok = co_await hasher_.verify(std::move(hash), std::move(password.as_sent));
  }
  co_return ok;
}

boost::asio::awaitable<Result<TokenPair>> AuthService::login(std::string username,
                                                             PasswordAttempt password,
                                                             std::string client_address) {
  const std::string key = username_key(username);
  auto attempt = co_await start_login_attempt(key, client_address);
  if (attempt.wait_seconds > 0) {
    metrics::metrics().throttled.with({"login"}).inc();
    co_return Error::throttled(static_cast<int>(attempt.wait_seconds));
  }
  auto check = check_login(key, std::move(password));
  auto [user, password_ok] = co_await checked(attempt, std::move(check));
  if (!user || !password_ok || !user->is_active) {
    co_return Error::unauthenticated(kNoActiveAccount);  // the attempt stays counted
  }
  co_await give_back(std::move(attempt));
  // The password may have changed (or the account been deactivated) while it was checked:
  // then the attempt was against a password that no longer opens the account.
  auto tokens = co_await issue_tokens(user->id, user->password_hash);
  if (!tokens) co_return Error::unauthenticated(kNoActiveAccount);
  co_return std::move(*tokens);
}

boost::asio::awaitable<Result<RefreshedTokens>> AuthService::refresh(std::string refresh_token) {
  auto decoded = jwt_.decode(refresh_token, TokenType::refresh, now_seconds());
  if (!decoded.claims) co_return invalid_token(decoded.problem);
  auto claims = std::move(decoded.claims);
  // The account before the token's state: a deactivated user's refresh answers as the
  // original's does (its deactivation revoked no tokens), though here deactivation ended
  // their sessions too; as holder_problem() does for access tokens.
  auto user = co_await store_.users().find_by_id(claims->user_id);
  if (!user || !user->is_active) {
    co_return Error::unauthenticated("No active account found for the given token.");
  }
  if (co_await store_.refresh_tokens().state(claims->jti) != store::TokenState::active) {
    co_return blacklisted();
  }
  const std::int64_t now = now_seconds();
  const std::string session = session_of(*claims);
  RefreshedTokens out{issue_access(user->id, now, session), std::nullopt};
  if (settings_.rotate_refresh_tokens) {
    TokenClaims next{TokenType::refresh,  user->id, now, now + settings_.refresh_lifetime,
                     JwtCodec::new_jti(), session};
    // Revoking the old token and recording the new one is one transaction: of two
    // concurrent uses of one refresh token, only one gets a successor.
    store::RefreshTokenRecord row{next.jti, user->id, now, next.expires_at, session};
    if (!co_await store_.refresh_tokens().rotate(claims->jti, std::move(row), now_micros())) {
      co_return blacklisted();
    }
    out.refresh = jwt_.encode(next);
  }
  co_return out;
}

boost::asio::awaitable<Result<Ok>> AuthService::logout(std::string refresh_token) {
  auto decoded = jwt_.decode(refresh_token, TokenType::refresh, now_seconds());
  if (!decoded.claims) co_return invalid_token(decoded.problem);
  const auto& claims = *decoded.claims;
  const std::string session = session_of(claims);
  // Access tokens of the session may be issued until the refresh token expires, and live
  // one access lifetime past that.
  const std::int64_t keep_until = claims.expires_at + settings_.access_lifetime;
  if (co_await store_.refresh_tokens().revoke(claims.jti, session, keep_until, now_micros()) !=
      store::TokenState::active) {
    co_return blacklisted();
  }
  if (session_ended_) session_ended_(claims.user_id, session);
  co_return Ok{};
}

boost::asio::awaitable<Result<store::UserRecord>> AuthService::authenticate(
    std::string access_token) {
  auto who = co_await authenticate_session(std::move(access_token));
  if (!who) co_return std::move(who).error();
  co_return std::move(who->user);
}

namespace {

Error refused_access(const std::string& why) {
  Error e = Error::unauthenticated("Given token not valid for any token type", "token_not_valid");
  e.token_message = why;
  return e;
}

// What is wrong with a valid access token's holder, if anything. The account comes first:
// a deactivated user's tokens answer user_inactive, as the original's do (SimpleJWT's
// get_user), though deactivation ended their sessions too; an ended session of an active
// account is refused as blacklisted.
std::optional<Error> holder_problem(const store::TokenHolder& holder) {
  if (!holder.user) return Error::unauthenticated("User not found", "user_not_found");
  if (!holder.user->is_active) return Error::unauthenticated("User is inactive", "user_inactive");
  if (holder.session_ended) return refused_access("Token is blacklisted");
  return std::nullopt;
}

}  // namespace

boost::asio::awaitable<Result<Authenticated>> AuthService::authenticate_session(
    std::string access_token) {
  auto decoded = jwt_.decode(access_token, TokenType::access, now_seconds());
  if (!decoded.claims) co_return refused_access(invalid_token(decoded.problem).detail);
  auto& claims = *decoded.claims;
  auto holder = co_await store_.users().find_token_holder(claims.user_id, claims.session);
  if (auto problem = holder_problem(holder)) co_return std::move(*problem);
  co_return Authenticated{std::move(*holder.user), std::move(claims.session)};
}

boost::asio::awaitable<Result<Ok>> AuthService::still_valid(std::int64_t user_id,
                                                            std::string session) {
  auto holder = co_await store_.users().find_token_holder(user_id, std::move(session));
  if (auto problem = holder_problem(holder)) co_return std::move(*problem);
  co_return Ok{};
}

boost::asio::awaitable<Result<Ok>> AuthService::confirm_password(const store::UserRecord& user,
                                                                 PasswordAttempt password,
                                                                 std::string client_address,
                                                                 const char* field_name) {
  const std::string key = username_key(user.username);
  auto attempt = co_await start_login_attempt(key, client_address);
  if (attempt.wait_seconds > 0) {
    metrics::metrics().throttled.with({"login"}).inc();
    co_return Error::throttled(static_cast<int>(attempt.wait_seconds));
  }
  auto check = matches(user.password_hash, std::move(password));
  const bool password_ok = co_await checked(attempt, std::move(check));
  if (!password_ok) co_return Error::field(field_name, "Wrong password.");  // stays counted
  co_await give_back(std::move(attempt));
  co_return Ok{};
}

store::SessionEnd AuthService::session_end(std::string keep_session) const {
  return {std::move(keep_session), settings_.access_lifetime, now_micros()};
}

void AuthService::sessions_ended(std::int64_t user_id,
                                 const std::vector<std::string>& sessions) const {
  if (!session_ended_) return;
  for (const auto& session : sessions) session_ended_(user_id, session);
}

}  // namespace chat::auth
