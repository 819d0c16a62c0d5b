// Issued refresh tokens, so that logout, rotation and password changes can revoke them
// durably (SimpleJWT's outstanding/blacklisted tokens). One row per issued refresh token.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/time.hpp"

namespace chat::store {

struct RefreshTokenRecord {
  std::string jti;
  std::int64_t user_id = 0;
  std::int64_t issued_at = 0;   // seconds
  std::int64_t expires_at = 0;  // seconds
  std::string session;          // the login session it belongs to (its sid)
};

enum class TokenState { active, revoked, unknown };

class RefreshTokenStore {
 public:
  virtual ~RefreshTokenStore() = default;

  // Records the token of a new login session, only while its user is active with the
  // password hash `password_hash` (the one the login just checked): a login that checked a
  // password changed meanwhile gets no session, else it would outlive the change's end of
  // the other sessions. False when not recorded.
  virtual boost::asio::awaitable<bool> record(RefreshTokenRecord token,
                                              std::string password_hash) = 0;
  virtual boost::asio::awaitable<TokenState> state(std::string jti) = 0;

  // Logout: marks the token revoked and, if it was active, records its session as ended
  // (kept until `keep_until`, seconds: past it no token of the session is valid anyway).
  // Returns the token's state before the call. Atomic: of two concurrent calls for one
  // token, one sees `active`.
  virtual boost::asio::awaitable<TokenState> revoke(std::string jti, std::string session,
                                                    std::int64_t keep_until, Micros now) = 0;
  // Whether a session was ended: UserStore::find_token_holder (every request asks it
  // together with the user).

  // Rotation in one transaction: revokes `old_jti` if it is active and records the new
  // token. Returns false (and records nothing) when the old token was not active.
  virtual boost::asio::awaitable<bool> rotate(std::string old_jti, RefreshTokenRecord next,
                                              Micros now) = 0;

  // A password change or a deactivation ends sessions: UserStore::update, in the change's
  // own transaction (UserChanges::end_sessions).

  // Deletes tokens (and ended sessions) that expired before `now_seconds`; returns how
  // many tokens.
  virtual boost::asio::awaitable<std::int64_t> prune_expired(std::int64_t now_seconds) = 0;
};

}  // namespace chat::store
