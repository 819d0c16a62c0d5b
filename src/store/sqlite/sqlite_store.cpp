#include "store/sqlite/sqlite_store.hpp"

#include <set>
#include <utility>

#include "store/sqlite/admin_store.hpp"
#include "store/sqlite/chat_store.hpp"
#include "store/sqlite/database.hpp"
#include "store/sqlite/migrations.hpp"
#include "store/sqlite/token_store.hpp"
#include "store/sqlite/user_store.hpp"

namespace chat::store::sqlite {
namespace {

constexpr const char* kCreateMigrationsTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT    NOT NULL,
  applied_at INTEGER NOT NULL
))sql";
constexpr const char* kAppliedVersions = "SELECT version FROM schema_migrations";
constexpr const char* kRecordMigration =
    "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?1, ?2, ?3)";
constexpr const char* kPing = "SELECT 1";

std::set<int> applied_versions(Connection& conn) {
  std::set<int> versions;
  auto stmt = conn.prepare(kAppliedVersions);
  while (stmt.step()) versions.insert(static_cast<int>(stmt.int64(0)));
  return versions;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const config::DatabaseSettings& s)
      : db_(s.sqlite_path, s.sqlite_synchronous, s.read_connections),
        users_(db_),
        tokens_(db_),
        chats_(db_, std::chrono::microseconds(s.sqlite_search_walk_micros)),
        admin_(db_) {}

  UserStore& users() override { return users_; }
  RefreshTokenStore& refresh_tokens() override { return tokens_; }
  ChatStore& chats() override { return chats_; }
  AdminStore& admin() override { return admin_; }

  std::vector<MigrationStatus> migrate() override {
    return db_.write_blocking([](Connection& conn) {
      conn.exec_script(kCreateMigrationsTable);
      std::vector<MigrationStatus> applied;
      for (const Migration& m : migrations()) {
        // BEGIN IMMEDIATE takes the write lock first, so of two processes migrating at
        // once the second sees the first one's rows and skips.
        Transaction tx(conn);
        if (applied_versions(conn).contains(m.version)) continue;
        conn.exec_script(m.sql);
        conn.prepare(kRecordMigration)
            .bind(1, m.version)
            .bind(2, m.name)
            .bind(3, now_micros())
            .exec();
        tx.commit();
        applied.push_back({m.version, m.name, true});
      }
      return applied;
    });
  }

  std::vector<MigrationStatus> migration_status() override {
    return db_.write_blocking([](Connection& conn) {
      conn.exec_script(kCreateMigrationsTable);
      const auto done = applied_versions(conn);
      std::vector<MigrationStatus> out;
      for (const Migration& m : migrations())
        out.push_back({m.version, m.name, done.contains(m.version)});
      return out;
    });
  }

  boost::asio::awaitable<bool> ping() override {
    try {
      // Named before co_await: README, "Coroutine rule".
      auto query = [](Connection& conn) { return conn.prepare(kPing).step(); };
      co_return co_await db_.read(std::move(query));
    } catch (const Unavailable&) {
      co_return false;
    }
  }

  [[nodiscard]] std::string describe() const override { return "sqlite:" + db_.path(); }

 private:
  Database db_;
  SqliteUserStore users_;
  SqliteRefreshTokenStore tokens_;
  SqliteChatStore chats_;
  SqliteAdminStore admin_;
};

}  // namespace

std::unique_ptr<Store> open_store(const config::DatabaseSettings& settings) {
  return std::make_unique<SqliteStore>(settings);
}

}  // namespace chat::store::sqlite
