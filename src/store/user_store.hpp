// Persistent users. Implementations: store/sqlite (now) and store/postgres (scale-out).
// Every method may be called from any I/O thread concurrently; each completes on the
// caller's executor. An unreachable database throws store::Unavailable.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/time.hpp"

namespace chat::store {

struct UserRecord {
  std::int64_t id = 0;
  std::string username;  // as the user typed it
  std::string email;
  std::string password_hash;  // libsodium's Argon2id string
  bool is_active = true;
  bool is_staff = false;
  bool is_superuser = false;
  Micros date_joined = 0;
  std::optional<Micros> last_seen;
};

struct NewUser {
  std::string username;
  std::string username_key;  // case-folded username; unique
  std::string email;
  std::string password_hash;
  bool is_staff = false;
  bool is_superuser = false;
  Micros date_joined = 0;
};

// The user an access token names, and whether the token's login session was ended by
// logging out.
struct TokenHolder {
  std::optional<UserRecord> user;  // nullopt: no such user
  bool session_ended = false;
};

struct UserPage {
  std::int64_t count = 0;  // all matches, not just this page
  std::vector<UserRecord> users;
};

struct UserFilter {
  std::string key_prefix;  // username_key starts with it (empty: any)
  bool active_only = true;
};

// The sessions a change of the account ends in its own transaction, so that the change
// never commits without it: every session of the user with an active refresh token but
// `keep_session` (the caller's, on a password change; none when empty, on a deactivation).
// Their tokens are revoked, and each session is recorded as ended until its newest token's
// expiry plus `access_lifetime` seconds (past that no token of it is valid anyway).
struct SessionEnd {
  std::string keep_session;
  std::int64_t access_lifetime = 0;
  Micros now = 0;
};

struct UserChanges {
  std::optional<std::string> email;
  std::optional<std::string> password_hash;
  std::optional<bool> is_active;
  std::optional<bool> is_staff;
  std::optional<bool> is_superuser;
  // Only if the password hash is still this one: the one a current password was checked
  // against, so that of two changes confirmed with the same password only the first applies.
  std::optional<std::string> unless_password_changed_from;
  std::optional<SessionEnd> end_sessions;
};

struct UpdatedUser {
  UserRecord user;
  std::vector<std::string> ended_sessions;  // by UserChanges::end_sessions
};

class UserStore {
 public:
  virtual ~UserStore() = default;

  virtual boost::asio::awaitable<std::optional<UserRecord>> find_by_id(std::int64_t id) = 0;
  virtual boost::asio::awaitable<std::optional<UserRecord>> find_by_username_key(
      std::string username_key) = 0;
  // Both things every authenticated request asks, in one read. An empty `session` (a
  // token from before sessions were tracked) is never ended.
  virtual boost::asio::awaitable<TokenHolder> find_token_holder(std::int64_t user_id,
                                                                std::string session) = 0;

  // Inserts the user; nullopt when `username_key` is taken (the unique index decides, so
  // two concurrent registrations of one name cannot both succeed).
  virtual boost::asio::awaitable<std::optional<UserRecord>> create(NewUser user) = 0;

  // Applies the set fields and ends the sessions asked for, in one transaction; returns the
  // updated user and the sessions ended, or nullopt (and changes nothing) when there is no
  // such user or its password hash is no longer `unless_password_changed_from`.
  virtual boost::asio::awaitable<std::optional<UpdatedUser>> update(std::int64_t id,
                                                                    UserChanges changes) = 0;

  // Records `when` as the last time these users were online, unless a later time is
  // recorded already (one write for them all).
  virtual boost::asio::awaitable<void> set_last_seen(std::vector<std::int64_t> ids,
                                                     Micros when) = 0;

  // The users `filter` lets through, by id.
  virtual boost::asio::awaitable<UserPage> list(UserFilter filter, int limit,
                                                std::int64_t offset) = 0;
};

}  // namespace chat::store
