#include "store/postgres/pg_user_store.hpp"

#include "store/postgres/pg_arrays.hpp"
#include "store/postgres/pg_database.hpp"
#include "store/postgres/pg_rows.hpp"
#include "store/postgres/pg_token_store.hpp"
#include "store/sql_columns.hpp"

namespace chat::store::postgres {
namespace {

constexpr const char* kUserById = "SELECT " CHAT_SQL_USER_COLUMNS " FROM users WHERE id = $1";
// One round trip: the user's columns (NULL when there is no such user), then whether the
// session was ended.
constexpr const char* kTokenHolder =
    "SELECT " CHAT_SQL_USER_COLUMNS
    ", $2 <> '' AND EXISTS (SELECT 1 FROM ended_sessions WHERE session = $2) "
    "FROM (SELECT 1) AS one LEFT JOIN users ON users.id = $1";
constexpr const char* kUserByKey =
    "SELECT " CHAT_SQL_USER_COLUMNS " FROM users WHERE username_key = $1";
// ON CONFLICT DO NOTHING: a taken name returns no row instead of aborting with an error.
constexpr const char* kInsertUser =
    "INSERT INTO users(username, username_key, email, password_hash, is_staff, is_superuser, "
    "date_joined) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING "
    "RETURNING " CHAT_SQL_USER_COLUMNS;
// COALESCE keeps a column when its parameter is NULL, so one statement serves every PATCH.
constexpr const char* kUpdateUser =
    "UPDATE users SET email = COALESCE($2, email), password_hash = COALESCE($3, password_hash), "
    "is_active = COALESCE($4, is_active), is_staff = COALESCE($5, is_staff), "
    "is_superuser = COALESCE($6, is_superuser) "
    "WHERE id = $1 AND ($7::text IS NULL OR password_hash = $7) RETURNING " CHAT_SQL_USER_COLUMNS;
// Prefix search is a range scan on the username_key index (byte order, COLLATE "C"):
// [prefix, prefix + U+10FFFF), whatever the database's locale.
constexpr const char* kCountUsers =
    "SELECT count(*) FROM users WHERE (NOT $3::boolean OR is_active) AND ($1 = '' OR "
    "(username_key >= $1 AND username_key < $2))";
constexpr const char* kListUsers =
    "SELECT " CHAT_SQL_USER_COLUMNS
    " FROM users WHERE (NOT $5::boolean OR is_active) AND ($1 = '' OR (username_key >= $1 "
    "AND username_key < $2)) ORDER BY id LIMIT $3 OFFSET $4";
constexpr const char* kSetLastSeen =
    "UPDATE users SET last_seen = GREATEST(last_seen, $2) WHERE id = ANY($1::bigint[])";

std::optional<UserRecord> first_user(const PgResult& r) {
  if (r.rows() == 0) return std::nullopt;
  return read_user(r, 0);
}

}  // namespace

boost::asio::awaitable<std::optional<UserRecord>> PgUserStore::find_by_id(std::int64_t id) {
  auto params = pg_params(id);
  auto r = co_await db_.query(kUserById, std::move(params));
  co_return first_user(r);
}

boost::asio::awaitable<std::optional<UserRecord>> PgUserStore::find_by_username_key(
    std::string username_key) {
  auto params = pg_params(std::move(username_key));
  auto r = co_await db_.query(kUserByKey, std::move(params));
  co_return first_user(r);
}

boost::asio::awaitable<TokenHolder> PgUserStore::find_token_holder(std::int64_t user_id,
                                                                   std::string session) {
  auto params = pg_params(user_id, std::move(session));
  auto r = co_await db_.query(kTokenHolder, std::move(params));
  TokenHolder h;
  if (!r.is_null(0, 0)) h.user = read_user(r, 0);
  h.session_ended = r.boolean(0, 9);
  co_return h;
}

boost::asio::awaitable<std::optional<UserRecord>> PgUserStore::create(NewUser u) {
  auto params = pg_params(u.username, u.username_key, u.email, u.password_hash, u.is_staff,
                          u.is_superuser, u.date_joined);
  auto r = co_await db_.query(kInsertUser, std::move(params));
  co_return first_user(r);
}

boost::asio::awaitable<std::optional<UpdatedUser>> PgUserStore::update(std::int64_t id,
                                                                       UserChanges c) {
  auto params = pg_params(id, c.email, c.password_hash, c.is_active, c.is_staff, c.is_superuser,
                          c.unless_password_changed_from);
  if (!c.end_sessions) {
    auto r = co_await db_.query(kUpdateUser, std::move(params));
    auto user = first_user(r);
    if (!user) co_return std::nullopt;
    co_return UpdatedUser{std::move(*user), {}};
  }
  // The change and the end of the sessions in one transaction: the UPDATE locks the row,
  // which end_sessions() needs.
  std::optional<UpdatedUser> updated;
  auto body = [&](PgConnection& conn) -> boost::asio::awaitable<void> {
    updated.reset();
    auto again = params;  // the body runs again when the transaction is retried
    auto r = co_await conn.prepared(kUpdateUser, std::move(again));
    auto user = first_user(r);
    if (!user) co_return;
    auto ended = co_await end_sessions(conn, id, *c.end_sessions);
    updated = UpdatedUser{std::move(*user), std::move(ended)};
  };
  PgDatabase::Body fn = body;
  co_await db_.transaction(std::move(fn));
  co_return updated;
}

boost::asio::awaitable<void> PgUserStore::set_last_seen(std::vector<std::int64_t> ids,
                                                        Micros when) {
  auto params = pg_params(array_literal(ids), when);
  co_await db_.query(kSetLastSeen, std::move(params));
}

boost::asio::awaitable<UserPage> PgUserStore::list(UserFilter filter, int limit,
                                                   std::int64_t offset) {
  std::string upper = filter.key_prefix + "\xF4\x8F\xBF\xBF";
  UserPage page;
  auto count_params = pg_params(filter.key_prefix, upper, filter.active_only);
  auto count = co_await db_.query(kCountUsers, std::move(count_params));
  page.count = count.rows() > 0 ? count.int64(0, 0) : 0;
  auto params =
      pg_params(std::move(filter.key_prefix), std::move(upper), limit, offset, filter.active_only);
  auto rows = co_await db_.query(kListUsers, std::move(params));
  for (int i = 0; i < rows.rows(); ++i) page.users.push_back(read_user(rows, i));
  co_return page;
}

}  // namespace chat::store::postgres
