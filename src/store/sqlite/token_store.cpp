#include "store/sqlite/token_store.hpp"

#include "store/sqlite/database.hpp"

namespace chat::store::sqlite {
namespace {

constexpr const char* kInsertToken =
    "INSERT INTO refresh_tokens(jti, user_id, issued_at_seconds, expires_at_seconds, session) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
// One writer: the check and the insert are one step against a password change's UPDATE.
constexpr const char* kInsertSessionToken =
    "INSERT INTO refresh_tokens(jti, user_id, issued_at_seconds, expires_at_seconds, session) "
    "SELECT ?1, ?2, ?3, ?4, ?5 FROM users WHERE id = ?2 AND password_hash = ?6 AND is_active";
constexpr const char* kTokenState = "SELECT revoked_at FROM refresh_tokens WHERE jti = ?1";
constexpr const char* kRevokeToken =
    "UPDATE refresh_tokens SET revoked_at = ?2 WHERE jti = ?1 AND revoked_at IS NULL";
// A token from before sessions were recorded (no session) is a session of its own, named
// by its jti, as the access tokens refreshed from it are (auth_service.cpp: session_of).
constexpr const char* kOtherSessions =
    "SELECT COALESCE(session, jti), max(expires_at_seconds) FROM refresh_tokens WHERE "
    "user_id = ?1 AND revoked_at IS NULL AND COALESCE(session, jti) <> ?2 GROUP BY 1";
constexpr const char* kRevokeOtherTokens =
    "UPDATE refresh_tokens SET revoked_at = ?3 WHERE user_id = ?1 AND revoked_at IS NULL AND "
    "COALESCE(session, jti) <> ?2";
constexpr const char* kPruneTokens = "DELETE FROM refresh_tokens WHERE expires_at_seconds < ?1";
constexpr const char* kEndSession =
    "INSERT OR IGNORE INTO ended_sessions(session, ended_at, keep_until_seconds) "
    "VALUES (?1, ?2, ?3)";
constexpr const char* kPruneSessions = "DELETE FROM ended_sessions WHERE keep_until_seconds < ?1";

TokenState token_state(Connection& conn, const std::string& jti) {
  auto stmt = conn.prepare(kTokenState);
  stmt.bind(1, jti);
  if (!stmt.step()) return TokenState::unknown;
  return stmt.is_null(0) ? TokenState::active : TokenState::revoked;
}

// With `password_hash`, only while the user is active with that hash (record). Returns
// whether the row went in.
bool insert_token(Connection& conn, const RefreshTokenRecord& t,
                  const std::string* password_hash = nullptr) {
  auto stmt = conn.prepare(password_hash != nullptr ? kInsertSessionToken : kInsertToken);
  stmt.bind(1, t.jti)
      .bind(2, t.user_id)
      .bind(3, t.issued_at)
      .bind(4, t.expires_at)
      .bind(5, t.session.empty() ? std::nullopt : std::optional<std::string>(t.session));
  if (password_hash != nullptr) stmt.bind(6, *password_hash);
  return stmt.exec() == 1;
}

}  // namespace

std::vector<std::string> end_sessions(Connection& conn, std::int64_t user_id,
                                      const SessionEnd& end) {
  std::vector<std::pair<std::string, std::int64_t>> others;  // (session, newest expiry)
  auto rows = conn.prepare(kOtherSessions);
  rows.bind(1, user_id).bind(2, end.keep_session);
  while (rows.step()) others.emplace_back(rows.text(0), rows.int64(1));
  conn.prepare(kRevokeOtherTokens)
      .bind(1, user_id)
      .bind(2, end.keep_session)
      .bind(3, end.now)
      .exec();
  std::vector<std::string> ended;
  for (auto& [session, expires] : others) {
    conn.prepare(kEndSession)
        .bind(1, session)
        .bind(2, end.now)
        .bind(3, expires + end.access_lifetime)
        .exec();
    ended.push_back(std::move(session));
  }
  return ended;
}

boost::asio::awaitable<bool> SqliteRefreshTokenStore::record(RefreshTokenRecord token,
                                                             std::string password_hash) {
  auto query = [t = std::move(token), hash = std::move(password_hash)](Connection& conn) {
    Transaction tx(conn);
    const bool recorded = insert_token(conn, t, &hash);
    tx.commit();
    return recorded;
  };
  co_return co_await db_.write(std::move(query));
}

boost::asio::awaitable<TokenState> SqliteRefreshTokenStore::state(std::string jti) {
  auto query = [jti = std::move(jti)](Connection& conn) { return token_state(conn, jti); };
  co_return co_await db_.read(std::move(query));
}

boost::asio::awaitable<TokenState> SqliteRefreshTokenStore::revoke(std::string jti,
                                                                   std::string session,
                                                                   std::int64_t keep_until,
                                                                   Micros now) {
  auto query = [jti = std::move(jti), session = std::move(session), keep_until,
                now](Connection& conn) {
    Transaction tx(conn);
    const TokenState before = token_state(conn, jti);
    if (before == TokenState::active) {
      conn.prepare(kRevokeToken).bind(1, jti).bind(2, now).exec();
      conn.prepare(kEndSession).bind(1, session).bind(2, now).bind(3, keep_until).exec();
    }
    tx.commit();
    return before;
  };
  co_return co_await db_.write(std::move(query));
}

boost::asio::awaitable<bool> SqliteRefreshTokenStore::rotate(std::string old_jti,
                                                             RefreshTokenRecord next, Micros now) {
  auto query = [old = std::move(old_jti), next = std::move(next), now](Connection& conn) {
    Transaction tx(conn);
    if (conn.prepare(kRevokeToken).bind(1, old).bind(2, now).exec() != 1) return false;
    insert_token(conn, next);
    tx.commit();
    return true;
  };
  co_return co_await db_.write(std::move(query));
}

boost::asio::awaitable<std::int64_t> SqliteRefreshTokenStore::prune_expired(
    std::int64_t now_seconds) {
  auto query = [now_seconds](Connection& conn) {
    Transaction tx(conn);
    const int n = conn.prepare(kPruneTokens).bind(1, now_seconds).exec();
    conn.prepare(kPruneSessions).bind(1, now_seconds).exec();
    tx.commit();
    return static_cast<std::int64_t>(n);
  };
  co_return co_await db_.write(std::move(query));
}

}  // namespace chat::store::sqlite
