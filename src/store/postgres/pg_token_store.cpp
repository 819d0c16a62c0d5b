#include "store/postgres/pg_token_store.hpp"

#include "store/postgres/pg_database.hpp"

namespace chat::store::postgres {
namespace {

constexpr const char* kInsertToken =
    "INSERT INTO refresh_tokens(jti, user_id, issued_at_seconds, expires_at_seconds, session) "
    "VALUES ($1, $2, $3, $4, $5)";
// FOR SHARE: a password change's UPDATE in progress is waited for, and the row checked
// again after it; one that comes later waits for this insert, so the end of the other
// sessions that follows it sees the new token.
constexpr const char* kInsertSessionToken =
    "INSERT INTO refresh_tokens(jti, user_id, issued_at_seconds, expires_at_seconds, session) "
    "SELECT $1, $2, $3, $4, $5 FROM users WHERE id = $2 AND password_hash = $6 AND is_active "
    "FOR SHARE";
constexpr const char* kTokenState = "SELECT revoked_at FROM refresh_tokens WHERE jti = $1";
// The state before the call, in one statement: the row lock of the UPDATE makes two
// concurrent revocations see `active` once.
// The session is recorded as ended only when this call revoked the token.
constexpr const char* kRevokeToken =
    "WITH before AS (SELECT jti, revoked_at FROM refresh_tokens WHERE jti = $1 FOR UPDATE), "
    "changed AS (UPDATE refresh_tokens t SET revoked_at = $2 FROM before b "
    "WHERE t.jti = b.jti AND b.revoked_at IS NULL RETURNING t.jti), "
    "ended AS (INSERT INTO ended_sessions(session, ended_at, keep_until_seconds) "
    "SELECT $3, $2, $4 FROM changed ON CONFLICT DO NOTHING) "
    "SELECT (SELECT count(*) FROM before), (SELECT count(*) FROM changed)";
constexpr const char* kPruneSessions = "DELETE FROM ended_sessions WHERE keep_until_seconds < $1";
constexpr const char* kRevokeIfActive =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE jti = $1 AND revoked_at IS NULL";
// One statement: the other sessions with an active token, their tokens revoked, the
// sessions recorded as ended. A token from before sessions were recorded (no session) is a
// session of its own, named by its jti, as the access tokens refreshed from it are
// (auth_service.cpp: session_of).
constexpr const char* kEndOtherSessions =
    "WITH others AS (SELECT COALESCE(session, jti) AS session, max(expires_at_seconds) AS "
    "expires FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL AND "
    "COALESCE(session, jti) <> $2 GROUP BY 1), "
    "revoked AS (UPDATE refresh_tokens SET revoked_at = $3 WHERE user_id = $1 AND "
    "revoked_at IS NULL AND COALESCE(session, jti) <> $2), "
    "ended AS (INSERT INTO ended_sessions(session, ended_at, keep_until_seconds) "
    "SELECT session, $3, expires + $4 FROM others ON CONFLICT DO NOTHING) "
    "SELECT session FROM others";
constexpr const char* kPruneTokens = "DELETE FROM refresh_tokens WHERE expires_at_seconds < $1";
// A rotation and the end of the other sessions take turns on the user's row: else a
// rotation's new token, committed after the end read the active tokens, would go on
// (the end's UPDATE waits for the old token's row, then finds it revoked, and misses the
// new one). The end comes after the change's UPDATE of that row in the same transaction,
// which waits for a rotation holding it FOR SHARE, so the end's snapshot has every
// rotation that went first.
constexpr const char* kShareUser = "SELECT 1 FROM users WHERE id = $1 FOR SHARE";

PgParams token_params(const RefreshTokenRecord& t) {
  std::optional<std::string> session;  // none: a token from before sessions were recorded
  if (!t.session.empty()) session = t.session;
  return pg_params(t.jti, t.user_id, t.issued_at, t.expires_at, std::move(session));
}

}  // namespace

boost::asio::awaitable<std::vector<std::string>> end_sessions(PgConnection& c, std::int64_t user_id,
                                                              const SessionEnd& end) {
  auto params = pg_params(user_id, end.keep_session, end.now, end.access_lifetime);
  auto r = co_await c.prepared(kEndOtherSessions, std::move(params));
  std::vector<std::string> ended;
  ended.reserve(static_cast<std::size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) ended.emplace_back(r.text(i, 0));
  co_return ended;
}

boost::asio::awaitable<bool> PgRefreshTokenStore::record(RefreshTokenRecord token,
                                                         std::string password_hash) {
  auto params = token_params(token);
  params.push_back(std::move(password_hash));
  auto result = co_await db_.query(kInsertSessionToken, std::move(params));
  co_return result.affected() == 1;
}

boost::asio::awaitable<TokenState> PgRefreshTokenStore::state(std::string jti) {
  auto params = pg_params(std::move(jti));
  auto r = co_await db_.query(kTokenState, std::move(params));
  if (r.rows() == 0) co_return TokenState::unknown;
  co_return r.is_null(0, 0) ? TokenState::active : TokenState::revoked;
}

boost::asio::awaitable<TokenState> PgRefreshTokenStore::revoke(std::string jti, std::string session,
                                                               std::int64_t keep_until,
                                                               Micros now) {
  auto params = pg_params(std::move(jti), now, std::move(session), keep_until);
  auto r = co_await db_.query(kRevokeToken, std::move(params));
  if (r.int64(0, 0) == 0) co_return TokenState::unknown;
  co_return r.int64(0, 1) == 1 ? TokenState::active : TokenState::revoked;
}

boost::asio::awaitable<bool> PgRefreshTokenStore::rotate(std::string old_jti,
                                                         RefreshTokenRecord next, Micros now) {
  bool rotated = false;
  auto body = [&](PgConnection& c) -> boost::asio::awaitable<void> {
    rotated = false;
    auto user = pg_params(next.user_id);
    co_await c.prepared(kShareUser, std::move(user));
    auto revoke = pg_params(old_jti, now);
    auto revoked = co_await c.prepared(kRevokeIfActive, std::move(revoke));
    if (revoked.affected() != 1) co_return;
    auto insert = token_params(next);
    co_await c.prepared(kInsertToken, std::move(insert));
    rotated = true;
  };
  PgDatabase::Body fn = body;
  co_await db_.transaction(std::move(fn));
  co_return rotated;
}

boost::asio::awaitable<std::int64_t> PgRefreshTokenStore::prune_expired(std::int64_t now_seconds) {
  auto params = pg_params(now_seconds);
  auto r = co_await db_.query(kPruneTokens, std::move(params));
  auto sessions = pg_params(now_seconds);
  co_await db_.query(kPruneSessions, std::move(sessions));
  co_return r.affected();
}

}  // namespace chat::store::postgres
