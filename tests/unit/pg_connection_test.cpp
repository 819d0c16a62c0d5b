// The PostgreSQL connection and pool against a real server: `make test` starts a throwaway
// cluster on loopback and names it in CHATD_TEST_PG.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>

#include "metrics/metrics.hpp"
#include "store/postgres/pg_database.hpp"
#include "store/postgres/pg_migrations.hpp"
#include "store/postgres/pg_pool.hpp"
#include "store/store.hpp"

using namespace chat::store;
using namespace chat::store::postgres;
namespace asio = boost::asio;

namespace {

std::string conninfo() {
  const char* c = std::getenv("CHATD_TEST_PG");
  return c == nullptr ? "" : c;
}

template <class F>
auto run(F f) {
  asio::io_context io;
  auto fut = asio::co_spawn(io, f(io.get_executor()), asio::use_future);
  io.run();
  return fut.get();
}

constexpr const char* kSql = "SELECT $1::bigint + 1, upper($2::text), $3::text IS NULL";

#define REQUIRE_POSTGRES() \
  if (conninfo().empty()) GTEST_SKIP() << "CHATD_TEST_PG not set (make test sets it)"

}  // namespace

TEST(PgConnection, QueriesWithParametersAndNulls) {
  REQUIRE_POSTGRES();
  auto rows = run([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
    auto conn = co_await PgConnection::connect(ex, conninfo());
    // Arguments are named first: g++ 12 mishandles braced temporaries in co_await.
    PgParams first{"41", "привет", std::nullopt};
    PgParams second{"1", "x", "y"};
    PgParams third_params{"2", "z", std::nullopt};
    auto r = co_await conn->query(kSql, std::move(first));
    auto again = co_await conn->prepared(kSql, std::move(second));
    auto third = co_await conn->prepared(kSql, std::move(third_params));
    std::vector<std::string> out;
    out.push_back(std::to_string(r.int64(0, 0)));
    out.emplace_back(r.text(0, 1));
    out.emplace_back(r.boolean(0, 2) ? "null" : "value");
    out.push_back(std::to_string(again.int64(0, 0)));
    out.emplace_back(again.boolean(0, 2) ? "null" : "value");
    out.push_back(std::to_string(third.int64(0, 0)));
    co_return out;
  });
  EXPECT_EQ(rows, (std::vector<std::string>{"42", "ПРИВЕТ", "null", "2", "value", "3"}));
}

// A connection that cannot be made counts in chatd_db_errors_total{kind="connect"}, so an
// outage shows on the dashboards before any query fails; one that opens does not.
TEST(PgConnection, RefusedConnectionsAreCountedAsErrors) {
  auto& errors = chat::metrics::metrics().db_errors.with({"postgres", "connect"});
  unsigned short port = 0;
  {  // a port nothing listens on
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  const auto before = errors.value();
  EXPECT_THROW(run([port](asio::any_io_executor ex) -> asio::awaitable<void> {
                 co_await PgConnection::connect(
                     ex, "host=127.0.0.1 port=" + std::to_string(port) + " dbname=x user=x");
               }),
               Unavailable);
  EXPECT_EQ(errors.value(), before + 1);
  if (conninfo().empty()) return;
  run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    co_await PgConnection::connect(ex, conninfo());
  });
  EXPECT_EQ(errors.value(), before + 1);
}

TEST(PgConnection, ServerErrorsCarryTheirSqlState) {
  REQUIRE_POSTGRES();
  const auto timed = chat::metrics::DbCallMetrics::of("postgres", "query");
  const auto calls_before = timed.seconds.snapshot().count;
  const auto errors_before = timed.errors.value();
  auto states = run([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
    auto conn = co_await PgConnection::connect(ex, conninfo());
    std::vector<std::string> out;
    co_await conn->script("CREATE TEMP TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1)");
    try {
      co_await conn->query("INSERT INTO t VALUES (1)");
    } catch (const PgError& e) {
      out.push_back(e.sqlstate());
    }
    try {
      co_await conn->query("SELEC nonsense");
    } catch (const PgError& e) {
      out.push_back(e.sqlstate());
    }
    // The connection is still good after errors.
    auto r = co_await conn->query("SELECT count(*) FROM t");
    out.push_back(std::to_string(r.int64(0, 0)));
    out.push_back(conn->healthy() ? "healthy" : "broken");
    co_return out;
  });
  EXPECT_EQ(states, (std::vector<std::string>{"23505", "42601", "1", "healthy"}));
  // /metrics counts both failures, and times the three queries.
  EXPECT_EQ(timed.errors.value() - errors_before, 2U);
  EXPECT_EQ(timed.seconds.snapshot().count - calls_before, 3U);
}

constexpr const char* kPipeInsert = "INSERT INTO p VALUES ($1) RETURNING k * 10";
constexpr const char* kPipeCount = "SELECT count(*) FROM p";

// Several statements in one round trip. Up to its sync point a pipeline is one implicit
// transaction: an error rolls back what ran before it and skips the rest, and the
// connection is usable again in normal mode.
TEST(PgConnection, PipelinesIndependentStatements) {
  REQUIRE_POSTGRES();
  auto out = run([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
    auto conn = co_await PgConnection::connect(ex, conninfo());
    std::vector<std::string> seen;
    co_await conn->script("CREATE TEMP TABLE p (k int PRIMARY KEY)");
    std::vector<PgStatement> batch;
    batch.push_back({kPipeInsert, {std::string("1")}});
    batch.push_back({kPipeInsert, {std::string("2")}});
    batch.push_back({kPipeCount, {}});
    auto results = co_await conn->pipeline(std::move(batch));
    seen.reserve(results.size());
    for (const auto& r : results) seen.push_back(std::string(r.text(0, 0)));
    std::vector<PgStatement> failing;
    failing.push_back({kPipeInsert, {std::string("3")}});
    failing.push_back({kPipeInsert, {std::string("1")}});  // duplicate key
    failing.push_back({kPipeInsert, {std::string("4")}});
    try {
      co_await conn->pipeline(std::move(failing));
    } catch (const PgError& e) {
      seen.push_back(e.sqlstate());
    }
    seen.push_back(conn->healthy() ? "healthy" : "broken");
    // Neither 3 (rolled back) nor 4 (skipped) is there.
    auto count = co_await conn->query(kPipeCount);
    seen.push_back(std::string(count.text(0, 0)));
    co_return seen;
  });
  EXPECT_EQ(out, (std::vector<std::string>{"10", "20", "2", "23505", "healthy", "2"}));
}

constexpr const char* kPipeFirst = "SELECT 'first'";
constexpr const char* kPipeSecond = "SELECT 'second'";

// A pipeline prepares its statements one by one. When the pool's plan epoch moves while it
// does (a stale plan met on another connection), the next prepare deallocates every
// statement, those this pipeline prepared already included: they are prepared again
// before the pipeline is sent, under names that still stand.
TEST(PgConnection, APipelinePreparesAgainWhenThePlanEpochMovesMeanwhile) {
  REQUIRE_POSTGRES();
  auto out = run([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
    auto conn = co_await PgConnection::connect(ex, conninfo());
    auto epoch = std::make_shared<std::atomic<std::uint64_t>>(0);
    conn->share_plan_epoch(epoch);
    // Runs once the pipeline waits for the server the first time: while it prepares its
    // first statement.
    asio::post(ex, [epoch] { epoch->fetch_add(1); });
    std::vector<PgStatement> reads;
    reads.push_back({kPipeFirst, {}});
    reads.push_back({kPipeSecond, {}});
    auto results = co_await conn->pipeline(std::move(reads));
    std::vector<std::string> seen;
    for (const auto& r : results) seen.emplace_back(r.text(0, 0));
    co_return seen;
  });
  EXPECT_EQ(out, (std::vector<std::string>{"first", "second"}));
}

constexpr const char* kStaleRead = "SELECT * FROM stale_plan ORDER BY a";

// A migration a newer node runs while this one serves may change what a prepared statement
// returns (a function's result, a table's columns). PostgreSQL then refuses the statement
// ("cached plan must not change result type") for as long as it stays prepared. The
// connection forgets its statements and the call runs again, prepared anew: a single
// statement, a pipeline and a transaction alike. (The pool has one connection, so the
// temporary table and the statements are on it.)
TEST(PgDatabase, RunsAStatementAgainWhenAMigrationChangedItsResult) {
  REQUIRE_POSTGRES();
  auto out = run([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
    PgDatabase db(PgPool::create(ex, conninfo(), 1));
    const auto alter = [&db](const char* sql) -> asio::awaitable<void> {
      auto lease = co_await db.pool().acquire();
      co_await lease->script(sql);
    };
    co_await alter("CREATE TEMP TABLE stale_plan (a int); INSERT INTO stale_plan VALUES (1)");
    std::vector<std::string> seen;
    auto before = co_await db.query(kStaleRead);
    seen.emplace_back(before.text(0, 0));

    co_await alter("ALTER TABLE stale_plan ADD COLUMN b int DEFAULT 7");
    {
      // The connection alone reports it, and prepares the statement anew next time.
      auto lease = co_await db.pool().acquire();
      try {
        co_await lease->prepared(kStaleRead);
        seen.emplace_back("no error");
      } catch (const PgError& e) {
        seen.push_back(e.stale_plan() ? "stale" : e.sqlstate());
      }
      auto again = co_await lease->prepared(kStaleRead);
      seen.emplace_back(again.text(0, 1));
    }

    co_await alter("ALTER TABLE stale_plan ADD COLUMN c int DEFAULT 8");
    auto single = co_await db.query(kStaleRead);
    seen.emplace_back(single.text(0, 2));

    co_await alter("ALTER TABLE stale_plan ADD COLUMN d int DEFAULT 9");
    std::vector<PgStatement> reads;
    reads.push_back({kStaleRead, {}});
    auto piped = co_await db.pipeline(std::move(reads));
    seen.emplace_back(piped[0].text(0, 3));

    co_await alter("ALTER TABLE stale_plan ADD COLUMN e int DEFAULT 10");
    std::string in_transaction;
    const PgDatabase::Body body = [&in_transaction](PgConnection& c) -> asio::awaitable<void> {
      auto r = co_await c.prepared(kStaleRead);
      in_transaction = r.text(0, 4);
    };
    co_await db.transaction(body);
    seen.push_back(in_transaction);
    co_return seen;
  });
  EXPECT_EQ(out, (std::vector<std::string>{"1", "stale", "7", "8", "9", "10"}));
}

// A database hiccup is Unavailable (503), never an unexplained error (500): a statement
// cancelled (statement_timeout here; pg_cancel_backend alike), and a conflict that lasts
// every attempt of a transaction (each attempt counted as a retry).
TEST(PgDatabase, CancelledStatementsAndLastingConflictsAreUnavailable) {
  REQUIRE_POSTGRES();
  const auto retries = [] {
    return chat::metrics::metrics().db_retries.with({"deadlock"}).value();
  };
  const auto before = retries();
  auto out = run([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
    PgDatabase db(PgPool::create(ex, conninfo(), 1));
    std::vector<std::string> seen;
    const PgDatabase::Body cancelled = [](PgConnection& c) -> asio::awaitable<void> {
      co_await c.query("SET LOCAL statement_timeout = '50ms'");
      co_await c.query("SELECT pg_sleep(2)");
    };
    int attempts = 0;
    const PgDatabase::Body conflicting = [&attempts](PgConnection& c) -> asio::awaitable<void> {
      ++attempts;
      co_await c.query("DO $$ BEGIN RAISE EXCEPTION 'cycle' USING ERRCODE = '40P01'; END $$");
    };
    for (const auto* body : {&cancelled, &conflicting}) {
      try {
        co_await db.transaction(*body);
        seen.emplace_back("committed");
      } catch (const Unavailable&) {
        seen.emplace_back("unavailable");
      } catch (const std::exception& e) {
        seen.emplace_back(e.what());
      }
    }
    seen.push_back(std::to_string(attempts));
    auto lease = co_await db.pool().acquire();
    auto alive = co_await lease->query("SELECT 1");
    seen.emplace_back(alive.text(0, 0));
    co_return seen;
  });
  EXPECT_EQ(out, (std::vector<std::string>{"unavailable", "unavailable",
                                           std::to_string(kTransactionAttempts), "1"}));
  EXPECT_EQ(retries() - before, kTransactionAttempts);
}

// A stale plan met on one of a pool's connections means the schema changed for all of
// them: the others prepare their statements anew before their next use instead of
// meeting the error too (where a retry of a transaction would land on them).
TEST(PgPool, AStalePlanOnOneConnectionRefreshesTheOthers) {
  REQUIRE_POSTGRES();
  static const std::string table = "stale_epoch_" + std::to_string(::getpid());
  static const std::string read = "SELECT * FROM " + table + " ORDER BY a";
  auto out = run([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
    auto pool = PgPool::create(ex, conninfo(), 2);
    auto first = co_await pool->acquire();
    auto second = co_await pool->acquire();
    co_await first->script("CREATE TABLE " + table + " (a int); INSERT INTO " + table +
                           " VALUES (1)");
    co_await first->prepared(read.c_str());
    co_await second->prepared(read.c_str());
    co_await first->script("ALTER TABLE " + table + " ADD COLUMN b int DEFAULT 7");
    std::vector<std::string> seen;
    try {
      co_await first->prepared(read.c_str());
      seen.emplace_back("no error");
    } catch (const PgError& e) {
      seen.push_back(e.stale_plan() ? "stale" : e.sqlstate());
    }
    try {
      auto r = co_await second->prepared(read.c_str());
      seen.emplace_back(r.text(0, 1));
    } catch (const PgError& e) {
      seen.push_back(e.stale_plan() ? "stale" : e.sqlstate());
    }
    co_await first->script("DROP TABLE " + table);
    co_return seen;
  });
  EXPECT_EQ(out, (std::vector<std::string>{"stale", "7"}));
}

TEST(PgConnection, UnreachableServerIsUnavailable) {
  EXPECT_THROW(run([](asio::any_io_executor ex) -> asio::awaitable<int> {
                 auto conn =
                     co_await PgConnection::connect(ex, "host=127.0.0.1 port=1 connect_timeout=2");
                 co_return 0;
               }),
               Unavailable);
}

TEST(PgPool, BoundsConnectionsAndQueuesWaiters) {
  REQUIRE_POSTGRES();
  asio::io_context io;
  auto pool = PgPool::create(io.get_executor(), conninfo(), 3);
  std::atomic<int> done{0};
  std::atomic<int> peak{0};
  std::atomic<int> busy{0};
  for (int i = 0; i < 12; ++i) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          auto lease = co_await pool->acquire();
          peak = std::max(peak.load(), ++busy);
          // pg_sleep holds the connection while the other coroutines wait for it, long
          // enough for the third connection to open on a slow machine.
          co_await lease->query("SELECT pg_sleep(0.2)");
          --busy;
          ++done;
        },
        [](const std::exception_ptr& e) {
          if (e) std::rethrow_exception(e);
        });
  }
  io.run();
  EXPECT_EQ(done, 12);
  EXPECT_EQ(peak, 3);
  EXPECT_EQ(pool->open_connections(), 3U);
}

// A connect that fails fails the acquires queued behind it too. Before, they slept until a
// later request gave back a healthy connection: with the database away, for ever. The
// "server" takes each connection and closes it, so every connect fails after a round trip.
TEST(PgPool, QueuedAcquiresFailWhenAConnectFails) {
  asio::io_context io;
  asio::ip::tcp::acceptor closing(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = std::to_string(closing.local_endpoint().port());
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          auto [ec, peer] = co_await closing.async_accept(asio::as_tuple(asio::use_awaitable));
          if (ec) co_return;
        }
      },
      asio::detached);
  auto pool = PgPool::create(
      io.get_executor(),
      "host=127.0.0.1 port=" + port + " dbname=chat user=chat sslmode=disable gssencmode=disable",
      2);
  constexpr int kAcquires = 6;
  int failed = 0;
  for (int i = 0; i < kAcquires; ++i) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          try {
            auto lease = co_await pool->acquire();
          } catch (const Unavailable&) {
            ++failed;
          }
          if (failed == kAcquires) closing.close();
        },
        asio::detached);
  }
  io.run_for(std::chrono::seconds(20));
  EXPECT_EQ(failed, kAcquires);
  EXPECT_EQ(pool->open_connections(), 0U);
}

// While another connection is lent out, a failed connect fails only its own acquire: the
// database is there but takes no more connections (a database limited to one here, as at
// max_connections), and the queued acquires are served as the lent connection comes back.
TEST(PgPool, QueuedAcquiresWaitForALentConnectionWhenAConnectFails) {
  REQUIRE_POSTGRES();
  const std::string db = "pool_limit_" + std::to_string(::getpid());
  const auto admin = [](const std::string& sql) {
    run([&sql](asio::any_io_executor ex) -> asio::awaitable<int> {
      auto conn = co_await PgConnection::connect(ex, conninfo());
      co_await conn->script(sql);
      co_return 0;
    });
  };
  admin("DROP DATABASE IF EXISTS " + db);
  admin("CREATE DATABASE " + db + " CONNECTION LIMIT 1");
  int served = 0;
  int failed = 0;
  {
    asio::io_context io;
    auto pool = PgPool::create(io.get_executor(), conninfo() + " dbname=" + db, 2);
    // The other three start once the first holds its connection: two connects at once may
    // both be refused by the limit, each counting the other.
    std::function<void()> start_the_rest;
    const auto acquirer = [&](bool first) {
      return [&, first]() -> asio::awaitable<void> {
        try {
          auto lease = co_await pool->acquire();
          if (first) start_the_rest();
          co_await lease->query("SELECT pg_sleep(0.3)");
          ++served;
        } catch (const Unavailable&) {
          ++failed;
        }
      };
    };
    start_the_rest = [&] {
      for (int i = 0; i < 3; ++i) asio::co_spawn(io, acquirer(false), asio::detached);
    };
    asio::co_spawn(io, acquirer(true), asio::detached);
    io.run_for(std::chrono::seconds(20));
  }
  admin("DROP DATABASE " + db + " WITH (FORCE)");
  EXPECT_EQ(failed, 1);  // the second connect
  EXPECT_EQ(served, 3);
}

namespace {

// A schema of its own per test, so migrations start from nothing.
std::string fresh_schema() {
  static int n = 0;
  return "t" + std::to_string(::getpid()) + "_" + std::to_string(++n);
}

asio::awaitable<std::unique_ptr<PgConnection>> connect_in(asio::any_io_executor ex,
                                                          const std::string& schema) {
  auto conn = co_await PgConnection::connect(ex, conninfo());
  co_await conn->script("CREATE SCHEMA IF NOT EXISTS " + schema + "; SET search_path TO " + schema);
  co_return conn;
}

}  // namespace

TEST(PgMigrations, ApplyOnceEvenFromTwoNodesAtOnce) {
  REQUIRE_POSTGRES();
  const std::string schema = fresh_schema();
  asio::io_context io;
  std::vector<std::size_t> applied_counts;
  std::vector<std::string> tables;
  std::int64_t rows = 0;
  std::size_t second_run = 99;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto a = co_await connect_in(io.get_executor(), schema);
        auto b = co_await connect_in(io.get_executor(), schema);
        // Two "nodes" migrate concurrently; the advisory lock makes them take turns. Both run
        // as their own coroutines, and this one waits for both.
        std::vector<MigrationStatus> ra;
        std::vector<MigrationStatus> rb;
        int finished = 0;
        std::exception_ptr error;
        auto done = [&](const std::exception_ptr& e) {
          if (e) error = e;
          ++finished;
        };
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { ra = co_await migrate(*a); }, done);
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { rb = co_await migrate(*b); }, done);
        asio::steady_timer wait(io);
        while (finished < 2) {
          wait.expires_after(std::chrono::milliseconds(5));
          co_await wait.async_wait(asio::use_awaitable);
        }
        if (error) std::rethrow_exception(error);
        applied_counts = {ra.size(), rb.size()};
        auto count = co_await a->query("SELECT count(*) FROM schema_migrations");
        rows = count.int64(0, 0);
        auto listed = co_await a->query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() "
            "ORDER BY table_name");
        for (int i = 0; i < listed.rows(); ++i) tables.emplace_back(listed.text(i, 0));
        second_run = (co_await migrate(*a)).size();
        co_await a->script("DROP SCHEMA " + schema + " CASCADE");
      },
      [](const std::exception_ptr& e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  const std::size_t total = pg_migrations().size();
  EXPECT_EQ(applied_counts[0] + applied_counts[1], total);  // each migration exactly once
  EXPECT_EQ(rows, static_cast<std::int64_t>(total));
  EXPECT_EQ(second_run, 0U);
  for (const char* t : {"chat_members", "chats", "event_log_state", "events", "hidden_messages",
                        "messages", "pins", "refresh_tokens", "schema_migrations", "users"}) {
    EXPECT_NE(std::find(tables.begin(), tables.end(), t), tables.end()) << t;
  }
}

// A member's watermarks move with each of their sends and delivery acknowledgements: the
// schema keeps those updates HOT (no index holds the watermarks, and the pages keep room
// for the new versions), so they add no index entries and leave no dead rows for vacuum.
TEST(PgMigrations, WatermarkUpdatesAreHot) {
  REQUIRE_POSTGRES();
  const std::string schema = fresh_schema();
  std::int64_t updated = 0;
  std::int64_t hot = 0;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto conn = co_await connect_in(ex, schema);
    co_await migrate(*conn);
    co_await conn->script(
        "INSERT INTO users(id, username, username_key, password_hash, date_joined) "
        "VALUES (1, 'ann', 'ann', 'x', 0), (2, 'bob', 'bob', 'x', 0);"
        "INSERT INTO chats(id, type, created_at, last_activity_at) VALUES (1, 'private', 0, 0);"
        "INSERT INTO chat_members(chat_id, user_id, role, joined_at) "
        "VALUES (1, 1, 'member', 0), (1, 2, 'member', 0);"
        "BEGIN;"
        "UPDATE chat_members SET last_read_message_id = 7, last_delivered_message_id = 7 "
        "WHERE chat_id = 1 AND user_id = 1;"
        "UPDATE chat_members SET last_delivered_message_id = 7 WHERE chat_id = 1;");
    // This transaction's own counts, before any statistics are flushed.
    auto counts = co_await conn->query(
        "SELECT pg_stat_get_xact_tuples_updated('chat_members'::regclass), "
        "pg_stat_get_xact_tuples_hot_updated('chat_members'::regclass)");
    updated = counts.int64(0, 0);
    hot = counts.int64(0, 1);
    co_await conn->script("ROLLBACK; DROP SCHEMA " + schema + " CASCADE");
  });
  EXPECT_EQ(updated, 3);
  EXPECT_EQ(hot, 3);
}
