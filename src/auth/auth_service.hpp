// Registration, login, token refresh, logout and bearer-token authentication: the rules of
// API.md's Authentication section, shared by every transport.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <optional>
#include <string>

#include "auth/jwt_codec.hpp"
#include "auth/password_attempt.hpp"
#include "common/result.hpp"
#include "store/store.hpp"

namespace chat::auth {

class PasswordHasher;
class RateLimiter;

struct AuthSettings {
  std::int64_t access_lifetime = 300;
  std::int64_t refresh_lifetime = 86400;
  bool rotate_refresh_tokens = false;
  int login_failures_per_user = 10;
  int login_failures_per_address = 100;
  std::int64_t login_failure_window = 900;
  int register_count = 0;  // 0: registration not throttled
  std::int64_t register_window = 0;
};

struct TokenPair {
  std::string access;
  std::string refresh;
};

struct Registration {
  store::UserRecord user;
  TokenPair tokens;
};

// Who an access token speaks for, and in which login session.
struct Authenticated {
  store::UserRecord user;
  std::string session;  // the token's "sid"; empty for tokens that carry none
};

// Told when a logout ends a session, so that the session's sockets close on every node.
using SessionEndedHook = std::function<void(std::int64_t user_id, const std::string& session)>;

struct RefreshedTokens {
  std::string access;
  std::optional<std::string> refresh;  // set when rotation is on
};

// Input as the transport parsed it. A field that was missing or of the wrong type is
// nullopt, with the reason already in `errors`; the rules below add their own messages.
struct RegistrationInput {
  std::optional<std::string> username;
  std::optional<std::string> email;
  std::optional<std::string> password;
  FieldErrors errors;
};

class AuthService {
 public:
  AuthService(store::Store& store, PasswordHasher& hasher, RateLimiter& limiter,
              const JwtCodec& jwt, AuthSettings settings);

  boost::asio::awaitable<Result<Registration>> register_user(RegistrationInput input,
                                                             std::string client_address);
  boost::asio::awaitable<Result<TokenPair>> login(std::string username, PasswordAttempt password,
                                                  std::string client_address);
  boost::asio::awaitable<Result<RefreshedTokens>> refresh(std::string refresh_token);
  boost::asio::awaitable<Result<Ok>> logout(std::string refresh_token);

  // The active user an access token belongs to; refused once its session was logged out.
  boost::asio::awaitable<Result<store::UserRecord>> authenticate(std::string access_token);
  boost::asio::awaitable<Result<Authenticated>> authenticate_session(std::string access_token);
  // authenticate_session's checks of the account and the login session, again, for a token
  // it admitted a moment ago (a socket whose node may not have heard a deactivation or a
  // logout that came meanwhile).
  boost::asio::awaitable<Result<Ok>> still_valid(std::int64_t user_id, std::string session);

  void on_session_ended(SessionEndedHook hook) { session_ended_ = std::move(hook); }

  // Checks `password` for `user` with the same throttling as login, so a stolen access
  // token cannot be used to guess the password through PATCH /users/me/.
  boost::asio::awaitable<Result<Ok>> confirm_password(const store::UserRecord& user,
                                                      PasswordAttempt password,
                                                      std::string client_address,
                                                      const char* field_name);

  // The end of sessions a change of the account commits with it (store::UserChanges):
  // after a password change, as Django keeps only the session that changed it, every other
  // login session of the user (`keep_session` goes on); on a deactivation (an empty
  // `keep_session`), every one, so that its tokens stay refused if the account is
  // activated again. Their refresh and access tokens are refused from the commit on.
  [[nodiscard]] store::SessionEnd session_end(std::string keep_session) const;
  // After a password change has committed: closes the ended sessions' sockets through
  // on_session_ended. (A deactivation's caller closes all of the user's.)
  void sessions_ended(std::int64_t user_id, const std::vector<std::string>& sessions) const;

  [[nodiscard]] const AuthSettings& settings() const { return settings_; }

 private:
  // A new login session, if the user is still active with the password hash checked
  // (RefreshTokenStore::record); nullopt otherwise.
  boost::asio::awaitable<std::optional<TokenPair>> issue_tokens(std::int64_t user_id,
                                                                std::string password_hash);
  [[nodiscard]] std::string issue_access(std::int64_t user_id, std::int64_t now,
                                         const std::string& session) const;
  // A password check's place in the login throttle: an event reserved in the username's
  // window and in the address's, kept when the check fails and given back (give_back) when
  // it passes or could not be made (the store away).
  // Reserved before the hash: a check first and a count after it let every attempt in
  // flight through (150 at once were all checked against a limit of 10).
  struct LoginAttempt {
    std::int64_t wait_seconds = 0;  // > 0: throttled, nothing reserved
    std::string user_key, user_event, address_key, address_event;
  };
  boost::asio::awaitable<LoginAttempt> start_login_attempt(const std::string& key,
                                                           const std::string& address);
  boost::asio::awaitable<LoginAttempt> try_login_attempt(const std::string& key,
                                                         const std::string& address);
  boost::asio::awaitable<void> give_back(LoginAttempt attempt);
  // Runs the password check `check` of `attempt`. One that could not be made (it threw:
  // the store away, the hasher failing) gives the attempt's places back before the error
  // goes on: counted as failures, retries through an outage locked a correct login out.
  template <class T>
  boost::asio::awaitable<T> checked(LoginAttempt& attempt, boost::asio::awaitable<T> check);
  // The account named by `key` (if any), and whether `password` opens it.
  struct LoginCheck {
    std::optional<store::UserRecord> user;
    bool password_ok = false;
  };
  boost::asio::awaitable<LoginCheck> check_login(std::string key, PasswordAttempt password);
  // Whether the attempt matches `hash`: its trimmed text, or else the text as sent.
  boost::asio::awaitable<bool> matches(std::string hash, PasswordAttempt password);

  store::Store& store_;
  PasswordHasher& hasher_;
  RateLimiter& limiter_;
  const JwtCodec& jwt_;
  AuthSettings settings_;
  SessionEndedHook session_ended_;
};

}  // namespace chat::auth
