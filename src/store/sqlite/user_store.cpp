#include "store/sqlite/user_store.hpp"

#include "store/sql_columns.hpp"
#include "store/sqlite/database.hpp"
#include "store/sqlite/rows.hpp"
#include "store/sqlite/token_store.hpp"

namespace chat::store::sqlite {
namespace {

constexpr const char* kUserById = "SELECT " CHAT_SQL_USER_COLUMNS " FROM users WHERE id = ?1";
constexpr const char* kSessionEnded = "SELECT 1 FROM ended_sessions WHERE session = ?1";
constexpr const char* kUserByKey =
    "SELECT " CHAT_SQL_USER_COLUMNS " FROM users WHERE username_key = ?1";
constexpr const char* kInsertUser =
    "INSERT INTO users(username, username_key, email, password_hash, is_staff, is_superuser, "
    "date_joined) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
// COALESCE keeps a column when its parameter is NULL, so one statement serves every PATCH.
constexpr const char* kUpdateUser =
    "UPDATE users SET email = COALESCE(?2, email), password_hash = COALESCE(?3, password_hash), "
    "is_active = COALESCE(?4, is_active), is_staff = COALESCE(?5, is_staff), "
    "is_superuser = COALESCE(?6, is_superuser) WHERE id = ?1 AND (?7 IS NULL OR password_hash = "
    "?7)";
// Prefix search is a range scan on the unique username_key index: [prefix, prefix + U+10FFFF).
constexpr const char* kCountUsers =
    "SELECT count(*) FROM users WHERE (?3 = 0 OR is_active = 1) AND (?1 = '' OR "
    "(username_key >= ?1 AND username_key < ?2))";
constexpr const char* kListUsers =
    "SELECT " CHAT_SQL_USER_COLUMNS
    " FROM users WHERE (?5 = 0 OR is_active = 1) AND (?1 = '' OR (username_key >= ?1 "
    "AND username_key < ?2)) ORDER BY id LIMIT ?3 OFFSET ?4";

constexpr const char* kSetLastSeen =
    "UPDATE users SET last_seen = max(coalesce(last_seen, ?2), ?2) WHERE id = ?1";

std::optional<UserRecord> user_by_id(Connection& conn, std::int64_t id) {
  auto stmt = conn.prepare(kUserById);
  stmt.bind(1, id);
  return first_row(stmt, read_user);
}

}  // namespace

boost::asio::awaitable<std::optional<UserRecord>> SqliteUserStore::find_by_id(std::int64_t id) {
  auto query = [id](Connection& conn) { return user_by_id(conn, id); };
  co_return co_await db_.read(std::move(query));
}

boost::asio::awaitable<std::optional<UserRecord>> SqliteUserStore::find_by_username_key(
    std::string username_key) {
  auto query = [key = std::move(username_key)](Connection& conn) {
    auto stmt = conn.prepare(kUserByKey);
    stmt.bind(1, key);
    return first_row(stmt, read_user);
  };
  co_return co_await db_.read(std::move(query));
}

boost::asio::awaitable<TokenHolder> SqliteUserStore::find_token_holder(std::int64_t user_id,
                                                                       std::string session) {
  auto query = [user_id, session = std::move(session)](Connection& conn) {
    TokenHolder h;
    h.session_ended = !session.empty() && conn.prepare(kSessionEnded).bind(1, session).step();
    h.user = user_by_id(conn, user_id);
    return h;
  };
  co_return co_await db_.read(std::move(query));
}

boost::asio::awaitable<std::optional<UserRecord>> SqliteUserStore::create(NewUser user) {
  auto query = [user = std::move(user)](Connection& conn) {
    Transaction tx(conn);
    try {
      conn.prepare(kInsertUser)
          .bind(1, user.username)
          .bind(2, user.username_key)
          .bind(3, user.email)
          .bind(4, user.password_hash)
          .bind(5, user.is_staff)
          .bind(6, user.is_superuser)
          .bind(7, user.date_joined)
          .exec();
    } catch (const ConstraintViolation&) {
      return std::optional<UserRecord>();
    }
    auto created = user_by_id(conn, conn.last_insert_rowid());
    tx.commit();
    return created;
  };
  co_return co_await db_.write(std::move(query));
}

boost::asio::awaitable<std::optional<UpdatedUser>> SqliteUserStore::update(std::int64_t id,
                                                                           UserChanges changes) {
  auto query = [id, c = std::move(changes)](Connection& conn) {
    Transaction tx(conn);
    const int changed = conn.prepare(kUpdateUser)
                            .bind(1, id)
                            .bind(2, c.email)
                            .bind(3, c.password_hash)
                            .bind(4, c.is_active)
                            .bind(5, c.is_staff)
                            .bind(6, c.is_superuser)
                            .bind(7, c.unless_password_changed_from)
                            .exec();
    if (changed == 0) return std::optional<UpdatedUser>();
    auto user = user_by_id(conn, id);
    if (!user) return std::optional<UpdatedUser>();
    UpdatedUser updated{std::move(*user), {}};
    if (c.end_sessions) updated.ended_sessions = end_sessions(conn, id, *c.end_sessions);
    tx.commit();
    return std::optional<UpdatedUser>(std::move(updated));
  };
  co_return co_await db_.write(std::move(query));
}

boost::asio::awaitable<void> SqliteUserStore::set_last_seen(std::vector<std::int64_t> ids,
                                                            Micros when) {
  auto query = [ids = std::move(ids), when](Connection& conn) {
    Transaction tx(conn);
    for (const auto id : ids) conn.prepare(kSetLastSeen).bind(1, id).bind(2, when).exec();
    tx.commit();
  };
  co_await db_.write(std::move(query));
}

boost::asio::awaitable<UserPage> SqliteUserStore::list(UserFilter filter, int limit,
                                                       std::int64_t offset) {
  auto query = [f = std::move(filter), limit, offset](Connection& conn) {
    const std::string& prefix = f.key_prefix;
    const std::string upper = prefix + "\xF4\x8F\xBF\xBF";
    UserPage page;
    {
      auto count = conn.prepare(kCountUsers);
      count.bind(1, prefix).bind(2, upper).bind(3, f.active_only);
      if (count.step()) page.count = count.int64(0);
    }
    auto stmt = conn.prepare(kListUsers);
    stmt.bind(1, prefix).bind(2, upper).bind(3, limit).bind(4, offset).bind(5, f.active_only);
    while (stmt.step()) page.users.push_back(read_user(stmt));
    return page;
  };
  co_return co_await db_.read(std::move(query));
}

}  // namespace chat::store::sqlite
