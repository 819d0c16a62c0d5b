#include "store/postgres/pg_store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <functional>

#include "store/postgres/pg_admin_store.hpp"
#include "store/postgres/pg_chat_store.hpp"
#include "store/postgres/pg_database.hpp"
#include "store/postgres/pg_migrations.hpp"
#include "store/postgres/pg_pool.hpp"
#include "store/postgres/pg_token_store.hpp"
#include "store/postgres/pg_user_store.hpp"

namespace chat::store::postgres {
namespace {

namespace asio = boost::asio;

constexpr const char* kHasTable = "SELECT to_regclass('schema_migrations') IS NOT NULL";
constexpr const char* kAppliedVersions = "SELECT version FROM schema_migrations";
constexpr const char* kPing = "SELECT 1";

std::string quoted(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

// Runs a coroutine to completion on a private I/O context: migrations run before the server
// starts, and the `migrate` command has no server at all.
template <class T>
T run_blocking(std::function<asio::awaitable<T>(asio::any_io_executor)> fn) {
  asio::io_context io;
  auto task = fn(io.get_executor());
  auto result = asio::co_spawn(io, std::move(task), asio::use_future);
  io.run();
  return result.get();
}

class PgStore final : public Store {
 public:
  PgStore(const config::DatabaseSettings& s, asio::any_io_executor executor)
      : conninfo_(conninfo(s)),
        description_("postgresql://" + s.user + "@" + s.host + ":" + std::to_string(s.port) + "/" +
                     s.name),
        db_(PgPool::create(std::move(executor), conninfo_, static_cast<std::size_t>(s.pool_size),
                           std::chrono::seconds(s.timeout_seconds))),
        users_(db_),
        tokens_(db_),
        chats_(db_),
        admin_(db_) {}

  UserStore& users() override { return users_; }
  RefreshTokenStore& refresh_tokens() override { return tokens_; }
  ChatStore& chats() override { return chats_; }
  AdminStore& admin() override { return admin_; }

  std::vector<MigrationStatus> migrate() override {
    const std::string info = conninfo_;
    return run_blocking<std::vector<MigrationStatus>>(
        [info](asio::any_io_executor ex) -> asio::awaitable<std::vector<MigrationStatus>> {
          auto conn = co_await PgConnection::connect(ex, info);
          co_return co_await postgres::migrate(*conn);
        });
  }

  std::vector<MigrationStatus> migration_status() override {
    const std::string info = conninfo_;
    return run_blocking<std::vector<MigrationStatus>>(
        [info](asio::any_io_executor ex) -> asio::awaitable<std::vector<MigrationStatus>> {
          auto conn = co_await PgConnection::connect(ex, info);
          auto has = co_await conn->query(kHasTable);
          std::vector<int> done;
          if (has.rows() > 0 && has.boolean(0, 0)) {
            auto rows = co_await conn->query(kAppliedVersions);
            for (int i = 0; i < rows.rows(); ++i)
              done.push_back(static_cast<int>(rows.int64(i, 0)));
          }
          std::vector<MigrationStatus> out;
          for (const PgMigration& m : pg_migrations()) {
            const bool applied = std::find(done.begin(), done.end(), m.version) != done.end();
            out.push_back({m.version, m.name, applied});
          }
          co_return out;
        });
  }

  asio::awaitable<bool> ping() override {
    bool ok = false;
    try {
      auto r = co_await db_.query(kPing);
      ok = r.rows() == 1;
    } catch (const std::exception&) {
      ok = false;
    }
    co_return ok;
  }

  [[nodiscard]] std::string describe() const override { return description_; }

 private:
  std::string conninfo_;
  std::string description_;
  PgDatabase db_;
  PgUserStore users_;
  PgRefreshTokenStore tokens_;
  PgChatStore chats_;
  PgAdminStore admin_;
};

}  // namespace

std::string conninfo(const config::DatabaseSettings& s) {
  std::string out = "host=" + quoted(s.host) + " port=" + std::to_string(s.port) +
                    " dbname=" + quoted(s.name) + " user=" + quoted(s.user) +
                    " connect_timeout=5 application_name=chatd"
                    // A server that vanished (power, network) is noticed in ~1 minute.
                    " keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3";
  if (!s.password.empty()) out += " password=" + quoted(s.password);
  // Durability of a commit is the server's synchronous_commit, set per connection here
  // (README: durability).
  out += " options=" + quoted("-c synchronous_commit=" + s.synchronous_commit);
  return out;
}

std::unique_ptr<Store> open_store(const config::DatabaseSettings& settings,
                                  asio::any_io_executor executor) {
  return std::make_unique<PgStore>(settings, std::move(executor));
}

}  // namespace chat::store::postgres
