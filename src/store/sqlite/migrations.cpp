#include "store/sqlite/migrations.hpp"

namespace chat::store::sqlite {
namespace {

// Times are microseconds (or seconds, where the name says so) since the Unix epoch.
constexpr const char* k0001_users = R"sql(
CREATE TABLE users (
  id            INTEGER PRIMARY KEY,
  username      TEXT    NOT NULL,
  username_key  TEXT    NOT NULL,
  email         TEXT    NOT NULL DEFAULT '',
  password_hash TEXT    NOT NULL,
  is_active     INTEGER NOT NULL DEFAULT 1,
  is_staff      INTEGER NOT NULL DEFAULT 0,
  is_superuser  INTEGER NOT NULL DEFAULT 0,
  date_joined   INTEGER NOT NULL,
  last_seen     INTEGER
);
-- Case-insensitive uniqueness: username_key is the case-folded username.
CREATE UNIQUE INDEX users_username_key ON users(username_key);

CREATE TABLE refresh_tokens (
  jti                TEXT    PRIMARY KEY,
  user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  issued_at_seconds  INTEGER NOT NULL,
  expires_at_seconds INTEGER NOT NULL,
  revoked_at         INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens(expires_at_seconds);
)sql";

constexpr Migration kMigrations[] = {
    {1, "users_and_refresh_tokens", k0001_users},
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

}  // namespace chat::store::sqlite
