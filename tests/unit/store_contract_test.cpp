// The Store contract, run against both backends: SQLite, and PostgreSQL when CHATD_TEST_PG
// names a server (`make test` starts one). Each test gets a fresh database.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <sqlite3.h>

#include <boost/json/parse.hpp>

#include "app/run_to_end.hpp"
#include "auth/credential_rules.hpp"
#include "chat/wire.hpp"
#include "common/unicode.hpp"
#include "config/settings.hpp"
#include "metrics/metrics.hpp"
#include "store/postgres/pg_connection.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

using namespace chat;
using namespace chat::store;

namespace {

// A message deletion's unpin events, where a test does not look at them.
std::vector<NewEvent> no_unpins(const PinRecord& /*unpinned*/) {
  return {};
}

// "t7": appended, since g++ 12 warns falsely (-Wrestrict) about "t" + std::string where
// it inlines it.
template <typename Int>
std::string numbered(const char* prefix, Int n) {
  std::string out = prefix;
  out += std::to_string(n);
  return out;
}

// A write's standing (store::Standing): `user` as a member of `chat`, whatever their role.
Standing member_of_chat(std::int64_t chat, std::int64_t user) {
  return Standing{chat, user, std::nullopt};
}

using chat::app::run_to_end;

struct Backend {
  std::string name;
  // Opens a fresh store whose scratch space is `scratch` (a folder, or a database name).
  std::function<std::unique_ptr<Store>(const std::string& scratch,
                                       boost::asio::any_io_executor executor)>
      open;
  std::function<void(const std::string& scratch)> drop;
};

// Runs one statement on the test server's `chat` database (to create and drop databases).
void pg_admin(const std::string& sql) {
  boost::asio::io_context io;
  auto task = [&]() -> boost::asio::awaitable<void> {
    auto conn =
        co_await postgres::PgConnection::connect(io.get_executor(), std::getenv("CHATD_TEST_PG"));
    co_await conn->script(sql);
  };
  run_to_end(io, task());
}

// Runs `sql` on the test server's database `dbname`.
void pg_exec(const std::string& dbname, const std::string& sql) {
  boost::asio::io_context io;
  auto task = [&]() -> boost::asio::awaitable<void> {
    const std::string port = std::getenv("CHATD_TEST_PG_PORT");
    auto conn = co_await postgres::PgConnection::connect(
        io.get_executor(),
        "host=127.0.0.1 port=" + port + " dbname=" + dbname + " user=chat password=chat");
    co_await conn->script(sql);
  };
  run_to_end(io, task());
}

// The first column of the first row `sql` answers on the test server's database `dbname`.
std::string pg_text(const std::string& dbname, const std::string& sql) {
  boost::asio::io_context io;
  std::string out;
  auto task = [&]() -> boost::asio::awaitable<void> {
    const std::string port = std::getenv("CHATD_TEST_PG_PORT");
    auto conn = co_await postgres::PgConnection::connect(
        io.get_executor(),
        "host=127.0.0.1 port=" + port + " dbname=" + dbname + " user=chat password=chat");
    auto rows = co_await conn->query(sql.c_str());
    EXPECT_EQ(rows.rows(), 1) << sql;
    if (rows.rows() > 0) out = std::string(rows.text(0, 0));
  };
  run_to_end(io, task());
  return out;
}

std::string db_name(const std::string& scratch) {
  std::string suffix = std::filesystem::path(scratch).filename().string().substr(12);
  std::replace(suffix.begin(), suffix.end(), '-', '_');
  return "contract_" + suffix;
}

void PrintTo(const Backend& b, std::ostream* os) {
  *os << b.name;
}

std::vector<Backend> backends() {
  std::vector<Backend> out;
  out.push_back({"sqlite",
                 [](const std::string& scratch, const boost::asio::any_io_executor& /*executor*/) {
                   config::DatabaseSettings s;
                   s.sqlite_path = scratch + "/db.sqlite3";
                   s.read_connections = 2;
                   return sqlite::open_store(s);
                 },
                 [](const std::string&) {}});
  // Always listed (ctest discovers the tests at build time, without the server); skipped
  // at run time when no server is named.
  {
    out.push_back({"postgres",
                   [](const std::string& scratch, boost::asio::any_io_executor ex) {
                     pg_admin("CREATE DATABASE " + db_name(scratch));
                     config::DatabaseSettings s;
                     s.host = "127.0.0.1";
                     s.port = std::atoi(std::getenv("CHATD_TEST_PG_PORT"));
                     s.name = db_name(scratch);
                     s.user = "chat";
                     s.password = "chat";
                     s.pool_size = 4;
                     return postgres::open_store(s, std::move(ex));
                   },
                   [](const std::string& scratch) {
                     pg_admin("DROP DATABASE IF EXISTS " + db_name(scratch) + " WITH (FORCE)");
                   }});
  }
  return out;
}

class StoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam().name == "postgres" && std::getenv("CHATD_TEST_PG_PORT") == nullptr) {
      GTEST_SKIP() << "no PostgreSQL server (CHATD_TEST_PG_PORT); `make test` starts one";
    }
    scratch_ = std::filesystem::temp_directory_path() /
               ("chatd-store-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(scratch_);
    store_ = GetParam().open(scratch_.string(), io_.get_executor());
    store_->migrate();
  }
  void TearDown() override {
    if (!store_) return;  // skipped
    store_.reset();
    GetParam().drop(scratch_.string());
    std::filesystem::remove_all(scratch_);
  }

  template <class T>
  T run(boost::asio::awaitable<T> a) {
    return run_to_end(io_, std::move(a));
  }

  // Closes the store, runs `sql` on its database and forgets migration `name`, then opens
  // the store again and migrates: what the migration did to the rows `sql` left.
  std::vector<MigrationStatus> rerun_migration(const std::string& name, const std::string& sql) {
    store_.reset();
    const std::string forget = sql + "DELETE FROM schema_migrations WHERE name = '" + name + "';";
    if (GetParam().name == "sqlite") {
      sqlite3* db = nullptr;
      const auto file = scratch_ / "db.sqlite3";
      EXPECT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
      EXPECT_EQ(sqlite3_exec(db, forget.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
          << sqlite3_errmsg(db);
      sqlite3_close(db);
      store_ = GetParam().open(scratch_.string(), io_.get_executor());
    } else {  // the database made by open(), opened again
      pg_exec(db_name(scratch_.string()), forget);
      config::DatabaseSettings s;
      s.host = "127.0.0.1";
      s.port = std::atoi(std::getenv("CHATD_TEST_PG_PORT"));
      s.name = db_name(scratch_.string());
      s.user = "chat";
      s.password = "chat";
      s.pool_size = 2;
      store_ = postgres::open_store(s, io_.get_executor());
    }
    return store_->migrate();
  }

  UserRecord make_user(const std::string& name) {
    NewUser u{name, name, name + "@example.com", "hash", false, false, 1'000};
    auto created = run(store_->users().create(u));
    EXPECT_TRUE(created);
    return *created;
  }

  // A new chat; its id.
  std::int64_t make_chat(const NewChat& chat) {
    auto created = run(store_->chats().create_chat(chat, [](const CreatedChat& c) {
      return std::vector<NewEvent>{
          NewEvent{c.chat_id, std::nullopt, "chat_created", R"({"type":"chat_created"})"}};
    }));
    EXPECT_TRUE(created.created);
    return created.chat_id;
  }

  // A message `sender` sends to `chat` with its clock at `at`; its id.
  std::int64_t send_text(std::int64_t chat, std::int64_t sender, std::string text, Micros at) {
    auto sent = run(store_->chats().send_message(
        {chat, sender, std::move(text), std::nullopt, std::nullopt, at}, [](const SentMessage& s) {
          return std::vector<NewEvent>{NewEvent{s.message.chat_id, std::nullopt, "message", "{}"}};
        }));
    EXPECT_TRUE(sent && sent->created);
    return sent ? sent->message.id : 0;
  }

  // ann (owner) and bob in the group "team", ann alone in the group "kept".
  struct TeamAndKept {
    UserRecord ann;
    UserRecord bob;
    std::int64_t team = 0;
    std::int64_t kept = 0;
  };
  TeamAndKept team_and_kept() {
    TeamAndKept out{make_user("ann"), make_user("bob")};
    out.team = make_chat(
        {ChatType::group, "team", {{out.ann.id, Role::owner}, {out.bob.id, Role::member}}, 10});
    out.kept = make_chat({ChatType::group, "kept", {{out.ann.id, Role::owner}}, 10});
    return out;
  }

  // Messages "m0", "m1"... from `sender` (with client_ids "c0", "c1"... when asked), sent
  // at times 20, 21...; their ids.
  std::vector<std::int64_t> send_numbered(std::int64_t chat_id, std::int64_t sender, int count,
                                          bool client_ids) {
    EventsFor<SentMessage> events = [](const SentMessage& s) {
      return std::vector<NewEvent>{
          NewEvent{s.message.chat_id, std::nullopt, "message", R"({"type":"message"})"}};
    };
    std::vector<std::int64_t> ids;
    for (int i = 0; i < count; ++i) {
      const std::string n = std::to_string(i);
      std::optional<std::string> client_id;
      if (client_ids) client_id = std::string("c").append(n);
      auto sent = run(store_->chats().send_message(
          {chat_id, sender, std::string("m").append(n), client_id, std::nullopt, 20 + i}, events));
      EXPECT_TRUE(sent && sent->created);
      if (sent) ids.push_back(sent->message.id);
    }
    return ids;
  }

  // Starts every send at once (the store batches those that queue) and waits for all. Each
  // stored message logs one event whose payload is {"id":<message id>}.
  std::vector<std::optional<SentMessage>> send_at_once(std::vector<NewMessage> sends) {
    std::vector<std::optional<SentMessage>> results(sends.size());
    // Parameters, unlike a lambda's captures, live in the coroutine frame.
    auto send_one = [](ChatStore& store, NewMessage m, std::optional<SentMessage>& slot,
                       std::atomic<std::size_t>& done) -> boost::asio::awaitable<void> {
      EventsFor<SentMessage> events = [](const SentMessage& s) {
        return std::vector<NewEvent>{NewEvent{s.message.chat_id, std::nullopt, "message",
                                              "{\"id\":" + std::to_string(s.message.id) + "}"}};
      };
      slot = co_await store.send_message(std::move(m), std::move(events));
      ++done;
    };
    std::atomic<std::size_t> done = 0;
    auto task = [&]() -> boost::asio::awaitable<void> {
      auto ex = co_await boost::asio::this_coro::executor;
      for (std::size_t i = 0; i < sends.size(); ++i) {
        boost::asio::co_spawn(ex, send_one(store_->chats(), std::move(sends[i]), results[i], done),
                              boost::asio::detached);
      }
      boost::asio::steady_timer t(ex);
      while (done < results.size()) {
        t.expires_after(std::chrono::milliseconds(5));
        co_await t.async_wait(boost::asio::use_awaitable);
      }
    };
    run(task());
    return results;
  }

  static inline int counter_ = 0;
  boost::asio::io_context io_;
  std::filesystem::path scratch_;
  std::unique_ptr<Store> store_;
};

}  // namespace

TEST_P(StoreContract, MigrationsAreIdempotent) {
  EXPECT_TRUE(store_->migrate().empty());
  auto status = store_->migration_status();
  ASSERT_FALSE(status.empty());
  for (const auto& m : status) EXPECT_TRUE(m.applied) << m.name;
  EXPECT_TRUE(run(store_->ping()));
}

TEST_P(StoreContract, CreatesAndFindsUsers) {
  auto ann = make_user("ann");
  EXPECT_GT(ann.id, 0);
  EXPECT_TRUE(ann.is_active);
  EXPECT_EQ(ann.date_joined, 1'000);
  auto by_id = run(store_->users().find_by_id(ann.id));
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->username, "ann");
  EXPECT_EQ(by_id->email, "ann@example.com");
  EXPECT_FALSE(by_id->last_seen);
  EXPECT_TRUE(run(store_->users().find_by_username_key("ann")));
  EXPECT_FALSE(run(store_->users().find_by_username_key("bob")));
  EXPECT_FALSE(run(store_->users().find_by_id(ann.id + 100)));
}

TEST_P(StoreContract, RecordsWhenSeveralUsersWereLastSeen) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto cat = make_user("cat");
  run(store_->users().set_last_seen({ann.id, cat.id}, 5'000));
  run(store_->users().set_last_seen({bob.id}, 6'000));
  run(store_->users().set_last_seen({}, 7'000));
  EXPECT_EQ(run(store_->users().find_by_id(ann.id))->last_seen, 5'000);
  EXPECT_EQ(run(store_->users().find_by_id(bob.id))->last_seen, 6'000);
  EXPECT_EQ(run(store_->users().find_by_id(cat.id))->last_seen, 5'000);
  // Never moved back: a record made earlier that lands later (a refresh of the users
  // online, taken before one of them went offline) leaves the later time.
  run(store_->users().set_last_seen({ann.id, bob.id}, 5'500));
  EXPECT_EQ(run(store_->users().find_by_id(ann.id))->last_seen, 5'500);
  EXPECT_EQ(run(store_->users().find_by_id(bob.id))->last_seen, 6'000);
}

TEST_P(StoreContract, UsernameKeysAreUnique) {
  make_user("ann");
  NewUser dup{"ANN", "ann", "x@example.com", "hash", false, false, 1};
  EXPECT_FALSE(run(store_->users().create(dup)));
}

TEST_P(StoreContract, UpdatesOnlyTheGivenFields) {
  auto ann = make_user("ann");
  UserChanges c;
  c.email = "new@example.com";
  auto updated = run(store_->users().update(ann.id, c));
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->user.email, "new@example.com");
  EXPECT_EQ(updated->user.password_hash, "hash");
  EXPECT_TRUE(updated->ended_sessions.empty());
  UserChanges deactivate;
  deactivate.is_active = false;
  EXPECT_FALSE(run(store_->users().update(ann.id, deactivate))->user.is_active);
  EXPECT_FALSE(run(store_->users().update(ann.id + 100, c)));
}

// Two password changes confirmed against the same password: the first applies, the second
// finds the password changed and changes nothing (not even its email).
TEST_P(StoreContract, AChangeConfirmedAgainstAReplacedPasswordChangesNothing) {
  auto ann = make_user("ann");  // password hash "hash"
  UserChanges first;
  first.password_hash = "first";
  first.unless_password_changed_from = "hash";
  auto updated = run(store_->users().update(ann.id, first));
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->user.password_hash, "first");
  // The second would end the other sessions too: it ends none.
  EXPECT_TRUE(run(store_->refresh_tokens().record({"t1", ann.id, 100, 200, "s1"}, "first")));
  UserChanges second;
  second.password_hash = "second";
  second.email = "second@example.com";
  second.unless_password_changed_from = "hash";
  second.end_sessions = SessionEnd{"s2", 60, 7};
  EXPECT_FALSE(run(store_->users().update(ann.id, second)));
  auto now = run(store_->users().find_by_id(ann.id));
  ASSERT_TRUE(now);
  EXPECT_EQ(now->password_hash, "first");
  EXPECT_EQ(now->email, ann.email);
  EXPECT_EQ(run(store_->refresh_tokens().state("t1")), TokenState::active);
  EXPECT_FALSE(run(store_->users().find_token_holder(ann.id, "s1")).session_ended);
  second.unless_password_changed_from = "first";
  auto applied = run(store_->users().update(ann.id, second));
  ASSERT_TRUE(applied);
  EXPECT_EQ(applied->user.password_hash, "second");
  EXPECT_EQ(applied->ended_sessions, std::vector<std::string>{"s1"});
  EXPECT_EQ(run(store_->refresh_tokens().state("t1")), TokenState::revoked);
}

TEST_P(StoreContract, ListsActiveUsersByPrefixWithPaging) {
  for (const char* n : {"alice", "alex", "bob", "alfred"}) make_user(n);
  auto bob = run(store_->users().find_by_username_key("bob"));
  auto all = run(store_->users().list({""}, 10, 0));
  EXPECT_EQ(all.count, 4);
  ASSERT_EQ(all.users.size(), 4U);
  EXPECT_LT(all.users[0].id, all.users[1].id);
  auto al = run(store_->users().list({"al"}, 2, 0));
  EXPECT_EQ(al.count, 3);
  ASSERT_EQ(al.users.size(), 2U);
  auto al2 = run(store_->users().list({"al"}, 2, 2));
  ASSERT_EQ(al2.users.size(), 1U);
  EXPECT_EQ(al2.users[0].username, "alfred");
  UserChanges off;
  off.is_active = false;
  run(store_->users().update(bob->id, off));
  EXPECT_EQ(run(store_->users().list({""}, 10, 0)).count, 3);
  // Staff see everyone, the inactive included.
  auto everyone = run(store_->users().list({"", false}, 10, 0));
  EXPECT_EQ(everyone.count, 4);
  ASSERT_EQ(everyone.users.size(), 4U);
  EXPECT_EQ(run(store_->users().list({"b", false}, 10, 0)).users.at(0).is_active, false);
}

TEST_P(StoreContract, RefreshTokensRevokeAndRotateOnce) {
  auto ann = make_user("ann");
  auto& tokens = store_->refresh_tokens();
  auto ended = [&](const char* session) {
    return run(store_->users().find_token_holder(ann.id, session)).session_ended;
  };
  // A change of the account that ends every session but `keep` (a password change; none
  // kept, a deactivation) and nothing else.
  auto end_sessions = [&](const char* keep, Micros now) {
    UserChanges change;
    change.end_sessions = SessionEnd{keep, 60, now};
    auto updated = run(store_->users().update(ann.id, change));
    EXPECT_TRUE(updated);
    return updated ? updated->ended_sessions : std::vector<std::string>{};
  };
  EXPECT_TRUE(run(tokens.record({"t1", ann.id, 100, 200}, "hash")));
  EXPECT_EQ(run(tokens.state("t1")), TokenState::active);
  EXPECT_EQ(run(tokens.state("nope")), TokenState::unknown);
  EXPECT_FALSE(ended("s1"));
  EXPECT_EQ(run(tokens.revoke("t1", "s1", 300, 150)), TokenState::active);
  EXPECT_TRUE(ended("s1"));
  // A token revoked already ends nothing more.
  EXPECT_EQ(run(tokens.revoke("t1", "s9", 300, 151)), TokenState::revoked);
  EXPECT_FALSE(ended("s9"));
  EXPECT_EQ(run(tokens.revoke("nope", "s8", 300, 151)), TokenState::unknown);
  EXPECT_FALSE(ended("s8"));
  EXPECT_EQ(run(tokens.state("t1")), TokenState::revoked);

  EXPECT_TRUE(run(tokens.record({"t2", ann.id, 100, 200}, "hash")));
  EXPECT_TRUE(run(tokens.rotate("t2", {"t3", ann.id, 110, 210}, 5)));
  EXPECT_FALSE(run(tokens.rotate("t2", {"t4", ann.id, 110, 210}, 6)));  // reuse
  EXPECT_EQ(run(tokens.state("t3")), TokenState::active);
  EXPECT_EQ(run(tokens.state("t4")), TokenState::unknown);

  // A password change in session s6: the other sessions end, and s6 goes on. A token
  // without a session (t3, from before sessions were recorded) is a session of its own,
  // named by its jti as the access tokens refreshed from it are: it ends too.
  EXPECT_TRUE(run(tokens.record({"t5", ann.id, 100, 400, "s5"}, "hash")));
  EXPECT_TRUE(run(tokens.record({"t6", ann.id, 100, 500, "s6"}, "hash")));
  EXPECT_TRUE(run(tokens.record({"t7", ann.id, 100, 450, "s5"}, "hash")));
  auto others = end_sessions("s6", 7);
  std::sort(others.begin(), others.end());
  EXPECT_EQ(others, (std::vector<std::string>{"s5", "t3"}));
  EXPECT_TRUE(ended("t3"));
  EXPECT_EQ(run(tokens.state("t3")), TokenState::revoked);
  EXPECT_EQ(run(tokens.state("t5")), TokenState::revoked);
  EXPECT_EQ(run(tokens.state("t7")), TokenState::revoked);
  EXPECT_EQ(run(tokens.state("t6")), TokenState::active);
  EXPECT_TRUE(ended("s5"));
  EXPECT_FALSE(ended("s6"));
  EXPECT_TRUE(end_sessions("s6", 8).empty());    // nothing left
  EXPECT_EQ(run(tokens.prune_expired(205)), 2);  // t1 and t2 expired at 200
  EXPECT_EQ(run(tokens.state("t1")), TokenState::unknown);
  EXPECT_EQ(run(tokens.state("t3")), TokenState::revoked);
  EXPECT_TRUE(ended("s1"));  // kept until 300
  run(tokens.prune_expired(301));
  EXPECT_FALSE(ended("s1"));
  EXPECT_TRUE(ended("s5"));  // kept until its newest token's expiry (450) + 60
  run(tokens.prune_expired(511));
  EXPECT_FALSE(ended("s5"));
  // Deactivation keeps no session: every one with an active token ends, so its access
  // tokens stay refused if the account is activated again.
  EXPECT_TRUE(run(tokens.record({"t8", ann.id, 1000, 2000, "s8b"}, "hash")));
  EXPECT_TRUE(run(tokens.record({"t9", ann.id, 1000, 2100, "s9"}, "hash")));
  EXPECT_TRUE(run(
      tokens.record({"t10", ann.id, 1000, 2100}, "hash")));  // from before sessions were recorded
  auto all = end_sessions("", 9);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::string>{"s8b", "s9", "t10"}));
  for (const char* t : {"t8", "t9", "t10"}) EXPECT_EQ(run(tokens.state(t)), TokenState::revoked);
  for (const char* s : {"s8b", "s9", "t10"}) EXPECT_TRUE(ended(s)) << s;
}

TEST_P(StoreContract, ALoginSessionIsRecordedOnlyForThePasswordItChecked) {
  auto ann = make_user("ann");
  auto& tokens = store_->refresh_tokens();
  // A password changed since the login checked it: no session.
  EXPECT_FALSE(run(tokens.record({"t1", ann.id, 100, 200, "s1"}, "an older hash")));
  EXPECT_EQ(run(tokens.state("t1")), TokenState::unknown);
  EXPECT_TRUE(run(tokens.record({"t2", ann.id, 100, 200, "s2"}, "hash")));
  EXPECT_EQ(run(tokens.state("t2")), TokenState::active);
  // Nor for an account deactivated meanwhile, or one that does not exist.
  UserChanges off;
  off.is_active = false;
  ASSERT_TRUE(run(store_->users().update(ann.id, off)));
  EXPECT_FALSE(run(tokens.record({"t3", ann.id, 100, 200, "s3"}, "hash")));
  EXPECT_FALSE(run(tokens.record({"t4", ann.id + 100, 100, 200, "s4"}, "hash")));
}

TEST_P(StoreContract, TokenHolderIsTheUserAndTheirSession) {
  auto ann = make_user("ann");
  auto holder = run(store_->users().find_token_holder(ann.id, "s1"));
  ASSERT_TRUE(holder.user);
  EXPECT_EQ(holder.user->username, "ann");
  EXPECT_TRUE(holder.user->is_active);
  EXPECT_FALSE(holder.session_ended);

  EXPECT_TRUE(run(store_->refresh_tokens().record({"t1", ann.id, 100, 200}, "hash")));
  run(store_->refresh_tokens().revoke("t1", "s1", 300, 150));
  EXPECT_TRUE(run(store_->users().find_token_holder(ann.id, "s1")).session_ended);
  EXPECT_FALSE(run(store_->users().find_token_holder(ann.id, "s2")).session_ended);
  EXPECT_FALSE(run(store_->users().find_token_holder(ann.id, "")).session_ended);

  UserChanges off;
  off.is_active = false;
  run(store_->users().update(ann.id, off));
  holder = run(store_->users().find_token_holder(ann.id, "s2"));
  ASSERT_TRUE(holder.user);
  EXPECT_FALSE(holder.user->is_active);

  // No such user: no record, and the session is still answered.
  holder = run(store_->users().find_token_holder(ann.id + 1000, "s1"));
  EXPECT_FALSE(holder.user);
  EXPECT_TRUE(holder.session_ended);
  EXPECT_FALSE(run(store_->users().find_token_holder(ann.id + 1000, "s2")).session_ended);
}

namespace {
// The events a store hands its commit listener (from any thread), in the order heard.
class HeardEvents {
 public:
  explicit HeardEvents(ChatStore& chats) {
    chats.set_commit_listener([this](const std::vector<EventRecord>& events) {
      std::lock_guard lock(mutex_);
      heard_.insert(heard_.end(), events.begin(), events.end());
    });
  }
  std::vector<EventRecord> all() {
    std::lock_guard lock(mutex_);
    return heard_;
  }

 private:
  std::mutex mutex_;
  std::vector<EventRecord> heard_;
};

std::vector<NewEvent> one_event(std::int64_t chat_id, const char* type) {
  return {NewEvent{chat_id, std::nullopt, type, std::string("{\"type\":\"") + type + "\"}"}};
}
}  // namespace

TEST_P(StoreContract, ChatsMessagesAndUnreadCounts) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  const auto id =
      make_chat({ChatType::group, "g", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10});
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  const auto ids = send_numbered(id, ann.id, 5, true);
  ASSERT_EQ(ids.size(), 5U);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  auto retry = run(chats.send_message({id, ann.id, "other text", "c2", std::nullopt, 99}, on_send));
  ASSERT_TRUE(retry);
  EXPECT_FALSE(retry->created);
  EXPECT_EQ(retry->message.id, ids[2]);
  EXPECT_EQ(retry->message.text, "m2");
  EXPECT_EQ(run(chats.unread_count(id, bob.id)).count, 5);
  EXPECT_EQ(run(chats.unread_count(id, ann.id)).count, 0);  // one's own messages never count

  auto no_events = [](const auto&) { return std::vector<NewEvent>{}; };
  EventsFor<MessageRecord> none = no_events;
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[4], none, no_unpins)));
  EXPECT_EQ(run(chats.unread_count(id, bob.id)).count, 4);
  auto m3 = run(chats.find_message(ids[3]));
  EXPECT_TRUE(run(chats.hide_message(bob.id, *m3, none)));
  EXPECT_EQ(run(chats.unread_count(id, bob.id)).count, 3);
  EXPECT_EQ(run(chats.unread_count(id, ann.id)).count, 0);
  EventsFor<WatermarkChange> none_w = no_events;
  auto read = run(chats.mark_read(id, bob.id, ids[1], none_w));
  EXPECT_TRUE(read.changed);
  EXPECT_EQ(run(chats.unread_count(id, bob.id)).count, 1);
  EXPECT_FALSE(run(chats.mark_read(id, bob.id, ids[0], none_w)).changed);  // never lowered
  // What a socket reads to open: the same counts, and the log's newest seq.
  auto states = run(chats.read_states(bob.id, std::nullopt));
  ASSERT_EQ(states.chats.size(), 1U);
  EXPECT_EQ(states.chats[0].chat_id, id);
  EXPECT_EQ(states.chats[0].last_read_message_id, ids[1]);
  EXPECT_EQ(states.chats[0].unread_count, 1);
  EXPECT_EQ(states.seq, run(chats.newest_seq()));
  EXPECT_GT(states.seq, 0);
  EXPECT_TRUE(run(chats.read_states(make_user("cid").id, std::nullopt)).chats.empty());
  auto page = run(chats.history(id, bob.id, std::nullopt, std::nullopt, 10));
  ASSERT_TRUE(page);
  EXPECT_EQ(page->messages.size(), 4U);  // the hidden one is gone for bob
  EXPECT_EQ(page->viewer.user_id, bob.id);
  EXPECT_EQ(page->viewer.last_read_message_id, ids[1]);
  ASSERT_FALSE(page->marks.lowest_read.empty());
  EXPECT_FALSE(run(chats.history(id, make_user("eve").id, std::nullopt, std::nullopt, 10)));
  auto found = run(chats.search(bob.id, {"m1"}, std::nullopt, 10));
  ASSERT_EQ(found.size(), 1U);
  EXPECT_EQ(found[0].id, ids[1]);
  EXPECT_TRUE(run(chats.search(bob.id, {"m4"}, std::nullopt, 10)).empty());  // deleted
  // A recount says where the log stood when it was read: the next event is above it.
  const auto before = run(chats.unread_count(id, bob.id));
  EXPECT_EQ(before.seq, states.seq);
  ASSERT_TRUE(run(chats.send_message({id, ann.id, "later", "c9", std::nullopt, 30}, on_send)));
  const auto after = run(chats.unread_count(id, bob.id));
  EXPECT_EQ(after.count, 2);
  EXPECT_GT(after.seq, before.seq);
  EXPECT_EQ(after.seq, run(chats.newest_seq()));
  EXPECT_EQ(run(chats.unread_count(id, make_user("dee").id)).count, 0);  // not a member
  // A socket of one chat reads that chat's alone, in the same snapshot as the seq.
  const auto other = make_chat({ChatType::group, "o", {{bob.id, Role::owner}}, 10});
  ASSERT_EQ(run(chats.read_states(bob.id, std::nullopt)).chats.size(), 2U);
  auto one = run(chats.read_states(bob.id, id));
  ASSERT_EQ(one.chats.size(), 1U);
  EXPECT_EQ(one.chats[0].chat_id, id);
  EXPECT_EQ(one.chats[0].last_read_message_id, ids[1]);
  EXPECT_EQ(one.chats[0].unread_count, 2);
  EXPECT_EQ(one.seq, run(chats.newest_seq()));
  EXPECT_EQ(run(chats.read_states(bob.id, other)).chats.at(0).chat_id, other);
  EXPECT_TRUE(run(chats.read_states(ann.id, other)).chats.empty());
}

// What a replay fills into chat objects: each chat's own fields as summary() has them, with
// the chat's watermarks, for the chats the viewer is in, in the order asked.
TEST_P(StoreContract, MemberViewsAreTheSummarysOwnFieldsOfTheViewersChats) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto cat = make_user("cat");
  auto& chats = store_->chats();
  const auto both =
      make_chat({ChatType::group, "both", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10});
  const auto not_bobs =
      make_chat({ChatType::group, "not", {{ann.id, Role::owner}, {cat.id, Role::member}}, 10});
  const auto quiet =
      make_chat({ChatType::group, "quiet", {{bob.id, Role::owner}, {cat.id, Role::member}}, 10});
  const auto ids = send_numbered(both, ann.id, 4, false);
  send_numbered(not_bobs, ann.id, 2, false);
  auto no_events = [](const auto&) { return std::vector<NewEvent>{}; };
  EventsFor<MessageRecord> none = no_events;
  EventsFor<PinRecord> none_p = no_events;
  EventsFor<WatermarkChange> none_w = no_events;
  ASSERT_TRUE(run(chats.pin(member_of_chat(both, ann.id), ids[0], 30, none_p)));
  ASSERT_TRUE(run(chats.pin(member_of_chat(both, ann.id), ids[3], 30, none_p)));
  ASSERT_TRUE(run(chats.hide_message(bob.id, *run(chats.find_message(ids[3])), none)));
  ASSERT_TRUE(run(chats.mark_read(both, bob.id, ids[1], none_w)).changed);

  const auto views = run(chats.member_views(bob.id, {quiet, not_bobs, both, both + 1000, both}));
  ASSERT_EQ(views.size(), 3U);  // not the chat bob is not in, nor one that is not
  EXPECT_EQ(views[0].chat_id, quiet);
  EXPECT_FALSE(views[0].last_message);
  EXPECT_EQ(views[0].unread_count, 0);
  EXPECT_TRUE(views[0].pinned_message_ids.empty());
  const auto& v = views[1];
  EXPECT_EQ(v.chat_id, both);
  const auto summary = run(chats.summary(both, bob.id));
  ASSERT_TRUE(summary);
  ASSERT_TRUE(v.last_message && summary->last_message);
  EXPECT_EQ(v.last_message->id, ids[2]);  // bob hid the newest
  EXPECT_EQ(v.last_message->id, summary->last_message->id);
  EXPECT_EQ(v.last_message->text, summary->last_message->text);
  EXPECT_EQ(v.unread_count, 1);
  EXPECT_EQ(v.unread_count, summary->unread_count);
  EXPECT_EQ(v.last_read_message_id, ids[1]);
  EXPECT_EQ(v.pinned_message_ids, std::vector<std::int64_t>{ids[0]});
  EXPECT_EQ(v.pinned_message_ids, summary->pinned_message_ids);
  const auto marks = run(chats.watermarks(both));
  auto entries = [](const std::vector<Watermarks::Entry>& es) {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (const auto& e : es) out.emplace_back(e.user_id, e.value);
    return out;
  };
  EXPECT_EQ(entries(v.marks.lowest_read), entries(marks.lowest_read));
  EXPECT_EQ(entries(v.marks.lowest_delivered), entries(marks.lowest_delivered));
  EXPECT_EQ(entries(v.marks.lowest_read), (std::vector<std::pair<std::int64_t, std::int64_t>>{
                                              {bob.id, ids[1]}, {ann.id, ids[3]}}));
  EXPECT_EQ(views[2].chat_id, both);  // asked twice, given twice
  EXPECT_EQ(entries(views[2].marks.lowest_read), entries(v.marks.lowest_read));
  EXPECT_TRUE(run(chats.member_views(bob.id, {})).empty());
}

// Several chats' counts in one read, in the order asked, 0 where the viewer is no member.
TEST_P(StoreContract, UnreadCountsOfSeveralChatsInOneRead) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  const auto two =
      make_chat({ChatType::group, "two", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10});
  const auto three =
      make_chat({ChatType::group, "three", {{ann.id, Role::owner}, {bob.id, Role::member}}, 11});
  const auto annes = make_chat({ChatType::group, "ann's", {{ann.id, Role::owner}}, 12});
  ASSERT_EQ(send_numbered(two, ann.id, 2, false).size(), 2U);
  ASSERT_EQ(send_numbered(three, ann.id, 3, false).size(), 3U);
  ASSERT_EQ(send_numbered(annes, ann.id, 1, false).size(), 1U);

  const auto counts = run(chats.unread_counts(bob.id, {three, annes, two, three}));
  EXPECT_EQ(counts.counts, (std::vector<std::int64_t>{3, 0, 2, 3}));
  EXPECT_EQ(counts.seq, run(chats.newest_seq()));
  EXPECT_TRUE(run(chats.unread_counts(bob.id, {})).counts.empty());
  EXPECT_EQ(run(chats.unread_counts(bob.id, {})).seq, counts.seq);
  EXPECT_EQ(run(chats.unread_counts(ann.id, {two, three})).counts,
            (std::vector<std::int64_t>{0, 0}));  // one's own messages never count
}

// A chat's two lowest read and delivered watermarks (what a receipt event carries), the
// same whether asked for alone or with a page of history.
TEST_P(StoreContract, WatermarksAreEachChatsTwoLowest) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto cid = make_user("cid");
  auto& chats = store_->chats();
  const auto id =
      make_chat({ChatType::group,
                 "g",
                 {{ann.id, Role::owner}, {bob.id, Role::member}, {cid.id, Role::member}},
                 10});
  const auto ids = send_numbered(id, ann.id, 4, false);
  ASSERT_EQ(ids.size(), 4U);
  auto no_events = [](const auto&) { return std::vector<NewEvent>{}; };
  EventsFor<WatermarkChange> none = no_events;
  const DeliveredNotes delivered{{id, {{bob.id, ids[2]}, {cid.id, ids[1]}}}};
  ASSERT_EQ(run(chats.mark_delivered_many(delivered, no_events)).at(0).changes.size(), 2U);
  ASSERT_TRUE(run(chats.mark_read(id, bob.id, ids[1], none)).changed);
  ASSERT_TRUE(run(chats.mark_read(id, cid.id, ids[0], none)).changed);

  auto entries = [](const std::vector<Watermarks::Entry>& v) {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (const auto& e : v) out.emplace_back(e.user_id, e.value);
    return out;
  };
  using Pairs = std::vector<std::pair<std::int64_t, std::int64_t>>;
  auto marks = run(chats.watermarks(id));
  EXPECT_EQ(entries(marks.lowest_read), (Pairs{{cid.id, ids[0]}, {bob.id, ids[1]}}));
  EXPECT_EQ(entries(marks.lowest_delivered), (Pairs{{cid.id, ids[1]}, {bob.id, ids[2]}}));
  auto page = run(chats.history(id, bob.id, std::nullopt, std::nullopt, 10));
  ASSERT_TRUE(page);
  EXPECT_EQ(entries(page->marks.lowest_read), entries(marks.lowest_read));
  EXPECT_EQ(entries(page->marks.lowest_delivered), entries(marks.lowest_delivered));
  EXPECT_TRUE(run(chats.watermarks(id + 1000)).lowest_read.empty());  // no such chat
}

// Delivered watermarks of several members of several chats in one write: each clamped to
// its chat's newest message at or below the value, never lowered, outsiders ignored, one
// batch per chat (in chat order) with its size and lowest watermark before and after, and
// events asked only of the batches in which a watermark moved.
TEST_P(StoreContract, DeliveredWatermarksOfManyChatsMoveInOneWrite) {
  auto ann = make_user("dann");
  auto bob = make_user("dbob");
  auto cid = make_user("dcid");
  auto& chats = store_->chats();
  const auto group =
      make_chat({ChatType::group,
                 "g",
                 {{ann.id, Role::owner}, {bob.id, Role::member}, {cid.id, Role::member}},
                 10});
  const auto pair =
      make_chat({ChatType::group, "p", {{ann.id, Role::owner}, {bob.id, Role::member}}, 11});
  const auto quiet =
      make_chat({ChatType::group, "q", {{ann.id, Role::owner}, {bob.id, Role::member}}, 12});
  const auto in_group = send_numbered(group, ann.id, 3, false);
  const auto in_pair = send_numbered(pair, ann.id, 2, false);
  ASSERT_EQ(in_group.size(), 3U);
  ASSERT_EQ(in_pair.size(), 2U);
  const std::int64_t since = run(chats.newest_seq());

  std::vector<std::int64_t> asked;  // the chats whose batch was asked for events
  EventsFor<DeliveredBatch> log_each = [&](const DeliveredBatch& b) {
    asked.push_back(b.chat_id);
    return one_event(b.chat_id, "delivered");
  };
  // bob's value in the pair lies past its newest message (clamped down to it); the quiet
  // chat has no message at all; the outsider is no member of the group.
  DeliveredNotes notes{{pair, {{bob.id, in_pair[1] + 1000}}},
                       {group, {{cid.id, in_group[0]}, {bob.id, in_group[1]}}},
                       {quiet, {{bob.id, 5}}}};
  notes[group].emplace_back(make_user("doutsider").id, in_group[2]);
  const auto batches = run(chats.mark_delivered_many(notes, log_each));
  ASSERT_EQ(batches.size(), 3U);
  std::vector<std::int64_t> order{batches[0].chat_id, batches[1].chat_id, batches[2].chat_id};
  std::vector<std::int64_t> expected{group, pair, quiet};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(order, expected);
  for (const auto& b : batches) {
    if (b.chat_id == group) {
      EXPECT_EQ(b.member_count, 3);
      ASSERT_EQ(b.changes.size(), 2U);  // by user: bob before cid
      EXPECT_EQ(b.changes[0].user_id, bob.id);
      EXPECT_EQ(b.changes[0].value, in_group[1]);
      EXPECT_EQ(b.changes[1].user_id, cid.id);
      EXPECT_EQ(b.changes[1].value, in_group[0]);
      EXPECT_EQ(b.lowest_before, 0);  // bob and cid had none
      EXPECT_EQ(b.lowest_after, in_group[0]);
    } else if (b.chat_id == pair) {
      EXPECT_EQ(b.member_count, 2);
      ASSERT_EQ(b.changes.size(), 1U);
      EXPECT_EQ(b.changes[0].value, in_pair[1]);
      EXPECT_EQ(b.lowest_after, in_pair[1]);
    } else {
      EXPECT_EQ(b.member_count, 2);
      EXPECT_TRUE(b.changes.empty());
      EXPECT_EQ(b.lowest_after, 0);
    }
  }
  std::sort(asked.begin(), asked.end());
  std::vector<std::int64_t> moved{group, pair};
  std::sort(moved.begin(), moved.end());
  EXPECT_EQ(asked, moved);
  const auto logged = run(chats.replay(bob.id, since, 10));
  EXPECT_EQ(logged.events.size(), 2U);  // one per batch that moved, as asked

  // Again, and lower: nothing moves, nothing is logged.
  asked.clear();
  notes[group] = {{bob.id, in_group[0]}, {cid.id, in_group[0]}};
  const auto again = run(chats.mark_delivered_many(notes, log_each));
  for (const auto& b : again) EXPECT_TRUE(b.changes.empty()) << b.chat_id;
  EXPECT_TRUE(asked.empty());
  EXPECT_EQ(run(chats.watermarks(group)).lowest_delivered.front().value, in_group[0]);
  EXPECT_TRUE(run(chats.mark_delivered_many({}, log_each)).empty());
}

// Writes that a service checks first are made only while what it checked still holds:
// a deleted message takes no pin and no forward, and a role changes only while the member
// and the one changing it still have the roles the change was checked against.
TEST_P(StoreContract, PinsAndRoleChangesHoldOnlyWhileTheirChecksDo) {
  auto ann = make_user("gann");
  auto bob = make_user("gbob");
  auto cat = make_user("gcat");
  auto& chats = store_->chats();
  const auto id =
      make_chat({ChatType::group,
                 "g",
                 {{ann.id, Role::owner}, {bob.id, Role::member}, {cat.id, Role::member}},
                 10});
  const auto ids = send_numbered(id, ann.id, 2, false);
  ASSERT_EQ(ids.size(), 2U);
  std::vector<std::string> logged;
  auto log = [&](const char* what) {
    return [&logged, what](const auto&) {
      logged.emplace_back(what);
      return std::vector<NewEvent>{};
    };
  };
  EventsFor<MessageRecord> deleted = log("delete");
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[0], deleted, no_unpins)));
  EventsFor<PinRecord> pin = log("pin");
  EXPECT_FALSE(run(chats.pin(member_of_chat(id, ann.id), ids[0], 20, pin)));
  // Not that chat's: ann pins it in another chat of hers.
  const auto other = make_chat({ChatType::group, "other", {{ann.id, Role::owner}}, 10});
  EXPECT_FALSE(run(chats.pin(member_of_chat(other, ann.id), ids[1], 20, pin)));
  auto pinned = run(chats.pin(member_of_chat(id, ann.id), ids[1], 20, pin));
  ASSERT_TRUE(pinned && pinned->second);
  EXPECT_EQ(logged, (std::vector<std::string>{"delete", "pin"}));

  // A forward copies its original as it is when written: not at all once it is deleted,
  // its newest text once edited.
  EventsFor<SentMessage> forwarded = log("forward");
  const NewMessage of_deleted{id, bob.id, "stale", std::nullopt, ids[0], 30, ids[0]};
  const auto refused = run(chats.send_message(of_deleted, forwarded));
  ASSERT_TRUE(refused);
  EXPECT_TRUE(refused->original_gone);
  EventsFor<MessageRecord> edited = log("edit");
  ASSERT_TRUE(
      run(chats.edit_message(member_of_chat(id, ann.id), ids[1], "newer words", 31, edited)));
  const NewMessage of_edited{id, bob.id, "older words", std::nullopt, ids[1], 32, ids[1]};
  const auto copy = run(chats.send_message(of_edited, forwarded));
  ASSERT_TRUE(copy && copy->created && !copy->original_gone);
  EXPECT_EQ(copy->message.text, "newer words");
  EXPECT_EQ(copy->message.forwarded_from, ids[1]);
  EXPECT_EQ(run(chats.find_message(copy->message.id))->text, "newer words");
  EXPECT_EQ(logged, (std::vector<std::string>{"delete", "pin", "edit", "forward"}));

  EventsFor<MemberChange> changed = log("role");
  // bob is no admin: a change expecting one is refused.
  EXPECT_FALSE(
      run(chats.set_role({id, bob.id, Role::admin, Role::member, ann.id, Role::owner}, changed)));
  // cat is no owner: a change made as one is refused.
  EXPECT_FALSE(
      run(chats.set_role({id, bob.id, Role::member, Role::admin, cat.id, Role::owner}, changed)));
  const auto made =
      run(chats.set_role({id, bob.id, Role::member, Role::admin, ann.id, Role::owner}, changed));
  ASSERT_TRUE(made);
  EXPECT_EQ(made->role, Role::admin);
  EXPECT_EQ(run(chats.find_member(id, bob.id))->role, Role::admin);
  EXPECT_EQ(std::count(logged.begin(), logged.end(), "role"), 1);
}

// A message deleted for everyone loses its pin in the deletion's transaction, logged
// right after the deletion; the chat's other pins stay.
TEST_P(StoreContract, DeletingAMessageUnpinsIt) {
  auto ann = make_user("uann");
  auto bob = make_user("ubob");
  auto& chats = store_->chats();
  const auto id =
      make_chat({ChatType::group, "g", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10});
  const auto ids = send_numbered(id, ann.id, 3, false);
  ASSERT_EQ(ids.size(), 3U);
  auto to_event = [](const char* type) {
    return [type](const auto& r) {
      NewEvent e;
      e.chat_id = r.chat_id;
      e.type = type;
      e.payload = std::string(R"({"type":")") + type + R"("})";
      return std::vector<NewEvent>{e};
    };
  };
  EventsFor<PinRecord> pinning = to_event("pin");
  const auto first = run(chats.pin(member_of_chat(id, ann.id), ids[0], 20, pinning));
  const auto second = run(chats.pin(member_of_chat(id, ann.id), ids[1], 20, pinning));
  ASSERT_TRUE(first && second);
  const std::int64_t since = run(chats.newest_seq());

  std::vector<PinRecord> unpinned;
  EventsFor<MessageRecord> deleting = to_event("message_deleted");
  EventsFor<PinRecord> unpinning = [&](const PinRecord& p) {
    unpinned.push_back(p);
    return to_event("unpin")(p);
  };
  // Standing as an owner bob does not have: nothing is deleted, nothing unpinned.
  const Standing not_owner{id, bob.id, Role::owner};
  EXPECT_FALSE(run(chats.delete_message(not_owner, ids[0], deleting, unpinning)));
  EXPECT_TRUE(unpinned.empty());
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[0], deleting, unpinning)));
  ASSERT_EQ(unpinned.size(), 1U);
  EXPECT_EQ(unpinned[0].id, first->first.id);
  EXPECT_EQ(unpinned[0].message_id, ids[0]);
  EXPECT_EQ(unpinned[0].pinned_by, ann.id);
  const auto pins = run(chats.pins(id));
  ASSERT_EQ(pins.size(), 1U);
  EXPECT_EQ(pins[0].message_id, ids[1]);
  EXPECT_FALSE(run(chats.find_pin(first->first.id)));
  const auto logged = run(chats.replay(bob.id, since, 10));
  ASSERT_EQ(logged.events.size(), 2U);
  EXPECT_EQ(logged.events[0].type, "message_deleted");
  EXPECT_EQ(logged.events[1].type, "unpin");

  // A message without a pin: no unpin.
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[2], deleting, unpinning)));
  EXPECT_EQ(unpinned.size(), 1U);
  EXPECT_EQ(run(chats.pins(id)).size(), 1U);
}

// The pins that earlier versions left on messages deleted for everyone are removed by a
// migration; the pins of live messages stay.
TEST_P(StoreContract, MigrationRemovesThePinsOfDeletedMessages) {
  auto ann = make_user("mann");
  auto& chats = store_->chats();
  const auto id = make_chat({ChatType::group, "g", {{ann.id, Role::owner}}, 10});
  const auto ids = send_numbered(id, ann.id, 2, false);
  ASSERT_EQ(ids.size(), 2U);
  EventsFor<PinRecord> none = [](const PinRecord&) { return std::vector<NewEvent>{}; };
  ASSERT_TRUE(run(chats.pin(member_of_chat(id, ann.id), ids[0], 20, none)));
  ASSERT_TRUE(run(chats.pin(member_of_chat(id, ann.id), ids[1], 20, none)));
  // Deleted as an earlier version did: the message only.
  const std::string truth = GetParam().name == "sqlite" ? "1" : "TRUE";
  const auto applied = rerun_migration(
      "unpin_deleted_messages", "UPDATE messages SET is_deleted = " + truth +
                                    ", text = '' WHERE id = " + std::to_string(ids[0]) + ";");
  ASSERT_EQ(applied.size(), 1U);
  const auto pins = run(store_->chats().pins(id));
  ASSERT_EQ(pins.size(), 1U);
  EXPECT_EQ(pins[0].message_id, ids[1]);
}

// Chat-wide deletions, pins and unpins that earlier versions logged without naming their
// message get it from a migration: then the members who hid the message get none of them,
// in a replay or from a node catching up, as for events logged since.
TEST_P(StoreContract, MigrationNamesTheMessageOfEarlierDeletionsAndPins) {
  auto ann = make_user("nann");
  auto bob = make_user("nbob");
  auto& chats = store_->chats();
  const auto id =
      make_chat({ChatType::group, "g", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10});
  const auto ids = send_numbered(id, ann.id, 2, false);
  ASSERT_EQ(ids.size(), 2U);
  const auto hidden = run(chats.find_message(ids[0]));
  ASSERT_TRUE(hidden);
  EventsFor<MessageRecord> hide = [&](const MessageRecord& m) {
    return std::vector<NewEvent>{chats::to_event(m.chat_id, chats::delete_event(m, true), bob.id)};
  };
  ASSERT_TRUE(run(chats.hide_message(bob.id, *hidden, hide)));
  const std::int64_t since = run(chats.newest_seq());
  EventsFor<PinRecord> pin = [](const PinRecord& p) {
    return std::vector<NewEvent>{chats::to_pin_event(chats::pin_event(p), p)};
  };
  EventsFor<PinRecord> unpin = [](const PinRecord& p) {
    return std::vector<NewEvent>{chats::to_pin_event(chats::unpin_event(p), p)};
  };
  EventsFor<MessageRecord> deletion = [](const MessageRecord& m) {
    return std::vector<NewEvent>{chats::to_delete_event(m)};
  };
  const auto pinned = run(chats.pin(member_of_chat(id, ann.id), ids[0], 20, pin));
  ASSERT_TRUE(pinned && pinned->second);
  ASSERT_TRUE(run(chats.unpin(member_of_chat(id, ann.id), pinned->first.id, unpin)));
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[0], deletion, no_unpins)));
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[1], deletion, no_unpins)));

  // Logged as earlier versions did: without their message.
  const auto applied =
      rerun_migration("event_message_ids",
                      "UPDATE events SET message_id = NULL WHERE user_id IS NULL AND type "
                      "IN ('delete', 'pin', 'unpin');");
  ASSERT_EQ(applied.size(), 1U);
  auto& again = store_->chats();
  auto about = [](const EventRecord& e) {
    return e.type + " " +
           std::to_string(boost::json::parse(e.payload).as_object().at("message_id").as_int64());
  };
  std::vector<std::string> replayed;
  for (const auto& e : run(again.replay(bob.id, since, 10)).events) {
    replayed.push_back(about(e));
  }
  EXPECT_EQ(replayed, std::vector<std::string>{"delete " + std::to_string(ids[1])});
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> read;
  for (const auto& e : run(again.events_since({id}, {}, since, 10))) {
    read.emplace_back(about(e), e.hidden_from);
  }
  const std::vector<std::int64_t> bob_only{bob.id}, nobody;
  const std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected{
      {"pin " + std::to_string(ids[0]), bob_only},
      {"unpin " + std::to_string(ids[0]), bob_only},
      {"delete " + std::to_string(ids[0]), bob_only},
      {"delete " + std::to_string(ids[1]), nobody}};
  EXPECT_EQ(read, expected);
}

// A write under a standing (store::Standing) changes nothing once the standing is gone: a
// demoted admin renames, adds, removes, deletes others' messages, pins and unpins nothing,
// and a member who left edits nothing; the same writes under a standing that holds work.
TEST_P(StoreContract, WritesUnderAStandingThatNoLongerHoldsChangeNothing) {
  auto ann = make_user("sann");
  auto bob = make_user("sbob");
  auto cat = make_user("scat");
  auto dan = make_user("sdan");
  auto& chats = store_->chats();
  const auto id = make_chat({ChatType::group,
                             "before",
                             {{ann.id, Role::owner}, {bob.id, Role::admin}, {cat.id, Role::member}},
                             10});
  const auto cats = send_numbered(id, cat.id, 2, false);
  const auto bobs = send_numbered(id, bob.id, 1, false);
  int logged = 0;
  auto count = [&logged](const auto&) {
    ++logged;
    return std::vector<NewEvent>{};
  };
  EventsFor<PinRecord> on_pin = count;
  const Standing owner{id, ann.id, Role::owner};
  const auto pinned = run(chats.pin(owner, cats[1], 20, on_pin));
  ASSERT_TRUE(pinned && pinned->second);

  // bob is demoted; what he checked as admin no longer holds.
  EventsFor<MemberChange> on_role = count;
  ASSERT_TRUE(
      run(chats.set_role({id, bob.id, Role::admin, Role::member, ann.id, Role::owner}, on_role)));
  logged = 0;
  const Standing was_admin{id, bob.id, Role::admin};
  EventsFor<RenamedChat> on_rename = count;
  EXPECT_FALSE(run(chats.rename_chat(was_admin, "after", on_rename)));
  EXPECT_EQ(run(chats.find_chat(id))->name, "before");
  EventsFor<MemberChange> on_add = count;
  EXPECT_FALSE(run(chats.add_member(was_admin, dan.id, Role::member, 30, on_add)));
  EXPECT_FALSE(run(chats.find_member(id, dan.id)));
  ChooseOwner nobody = [](const MemberRecord&, const std::vector<MemberRecord>&) {
    return std::optional<std::int64_t>();
  };
  EventsFor<Departure> on_remove = count;
  const RemovalBy removal_as_admin{was_admin, Role::member};
  EXPECT_FALSE(run(chats.remove_member(id, cat.id, removal_as_admin, nobody, on_remove)));
  EXPECT_TRUE(run(chats.find_member(id, cat.id)));
  EventsFor<MessageRecord> on_delete = count;
  EXPECT_FALSE(run(chats.delete_message(was_admin, cats[0], on_delete, no_unpins)));
  EXPECT_FALSE(run(chats.find_message(cats[0]))->is_deleted);
  EXPECT_FALSE(run(chats.pin(was_admin, cats[0], 31, on_pin)));
  EXPECT_EQ(run(chats.pins(id)).size(), 1U);
  EXPECT_FALSE(run(chats.unpin(was_admin, pinned->first.id, on_pin)));
  EXPECT_EQ(run(chats.pins(id)).size(), 1U);
  EventsFor<std::vector<MemberRecord>> on_delete_chat = count;
  EXPECT_FALSE(run(chats.delete_chat(Standing{id, bob.id, Role::owner}, on_delete_chat)));
  EXPECT_TRUE(run(chats.find_chat(id)));
  // A removal checked against a member's role no longer theirs: cat is made admin first.
  ASSERT_TRUE(
      run(chats.set_role({id, cat.id, Role::member, Role::admin, ann.id, Role::owner}, on_role)));
  const int after_promotion = logged;
  EXPECT_FALSE(
      run(chats.remove_member(id, cat.id, RemovalBy{owner, Role::member}, nobody, on_remove)));
  EXPECT_TRUE(run(chats.find_member(id, cat.id)));
  EXPECT_EQ(logged, after_promotion);  // nothing refused logged an event

  // bob leaves: as a member he edits nothing of his any more.
  ASSERT_TRUE(run(chats.remove_member(id, bob.id, std::nullopt, nobody, on_remove)));
  EventsFor<MessageRecord> on_edit = count;
  EXPECT_FALSE(run(chats.edit_message(member_of_chat(id, bob.id), bobs[0], "late", 40, on_edit)));
  EXPECT_EQ(run(chats.find_message(bobs[0]))->text, "m0");
  // A pin is unpinned only in its own chat.
  const auto elsewhere = make_chat({ChatType::group, "elsewhere", {{ann.id, Role::owner}}, 10});
  EXPECT_FALSE(
      run(chats.unpin(Standing{elsewhere, ann.id, Role::owner}, pinned->first.id, on_pin)));
  EXPECT_EQ(run(chats.pins(id)).size(), 1U);

  // Under standings that hold, the same writes are made.
  logged = 0;
  EXPECT_TRUE(run(chats.rename_chat(owner, "after", on_rename)));
  EXPECT_TRUE(run(chats.add_member(owner, dan.id, Role::member, 50, on_add)));
  EXPECT_TRUE(run(chats.delete_message(owner, cats[0], on_delete, no_unpins)));
  EXPECT_TRUE(run(chats.unpin(owner, pinned->first.id, on_pin)));
  EXPECT_TRUE(
      run(chats.remove_member(id, cat.id, RemovalBy{owner, Role::admin}, nobody, on_remove)));
  EXPECT_EQ(logged, 5);
  EXPECT_TRUE(run(chats.delete_chat(owner, on_delete_chat)));
  EXPECT_FALSE(run(chats.find_chat(id)));
}

// Pages skip exactly the viewer's hidden messages (not another member's), in both
// directions, with hidden runs at and across page edges, and name each message's sender.
TEST_P(StoreContract, HistoryPagesSkipTheViewersHiddenMessages) {
  auto ann = make_user("pann");
  auto bob = make_user("pbob");
  auto& chats = store_->chats();
  NewChat chat{ChatType::group, "p", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10};
  const auto id = run(chats.create_chat(chat, [](const CreatedChat& c) {
                    return one_event(c.chat_id, "chat_created");
                  })).chat_id;
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  EventsFor<MessageRecord> none = [](const auto&) { return std::vector<NewEvent>{}; };
  std::vector<MessageRecord> sent;
  for (int i = 0; i < 12; ++i) {
    const auto sender = i % 2 == 0 ? ann.id : bob.id;
    auto s = run(chats.send_message(
        {id, sender, numbered("t", i), numbered("h", i), std::nullopt, 30 + i}, on_send));
    ASSERT_TRUE(s && s->created);
    sent.push_back(s->message);
  }
  for (int i : {0, 4, 5, 6, 11}) ASSERT_TRUE(run(chats.hide_message(bob.id, sent[i], none)));
  ASSERT_TRUE(run(chats.hide_message(ann.id, sent[3], none)));  // not hidden for bob

  auto page_of = [&](std::int64_t viewer, std::optional<std::int64_t> before,
                     std::optional<std::int64_t> after) {
    auto page = run(chats.history(id, viewer, before, after, 3));
    std::vector<int> indexes;
    if (!page) {
      ADD_FAILURE() << "no page for a member";
      return std::pair{indexes, false};
    }
    for (const auto& m : page->messages) {
      const auto at = std::find_if(sent.begin(), sent.end(),
                                   [&](const MessageRecord& s) { return s.id == m.id; });
      if (at == sent.end()) {
        ADD_FAILURE() << "a message that was not sent: " << m.id;
        continue;
      }
      const int i = static_cast<int>(at - sent.begin());
      EXPECT_EQ(m.sender_username, i % 2 == 0 ? "pann" : "pbob");
      EXPECT_EQ(m.text, at->text);
      indexes.push_back(i);
    }
    return std::pair{indexes, page->has_more};
  };
  using Page = std::pair<std::vector<int>, bool>;
  // Newest first, each page before the last one's oldest message.
  EXPECT_EQ(page_of(bob.id, std::nullopt, std::nullopt), (Page{{10, 9, 8}, true}));
  EXPECT_EQ(page_of(bob.id, sent[8].id, std::nullopt), (Page{{7, 3, 2}, true}));
  EXPECT_EQ(page_of(bob.id, sent[2].id, std::nullopt), (Page{{1}, false}));
  // Oldest first, after a message.
  EXPECT_EQ(page_of(bob.id, std::nullopt, sent[0].id), (Page{{1, 2, 3}, true}));
  EXPECT_EQ(page_of(bob.id, std::nullopt, sent[3].id), (Page{{7, 8, 9}, true}));
  EXPECT_EQ(page_of(bob.id, std::nullopt, sent[9].id), (Page{{10}, false}));
  EXPECT_EQ(page_of(bob.id, sent[7].id, sent[2].id), (Page{{3}, false}));
  // The other member sees everything but their own hidden one.
  EXPECT_EQ(page_of(ann.id, sent[6].id, std::nullopt), (Page{{5, 4, 2}, true}));
}

TEST_P(StoreContract, ReplayAndPruning) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  NewChat chat{ChatType::private_chat, "", {{ann.id, Role::member}, {bob.id, Role::member}}, 10};
  auto created = run(chats.create_chat(
      chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }));
  auto again = run(chats.create_chat(
      chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }));
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.chat_id, created.chat_id);
  // Found by its pair, in either order; another pair has none.
  auto cat = make_user("cat");
  EXPECT_EQ(run(chats.find_private_chat(bob.id, ann.id)), created.chat_id);
  EXPECT_EQ(run(chats.find_private_chat(ann.id, bob.id)), created.chat_id);
  EXPECT_EQ(run(chats.find_private_chat(ann.id, cat.id)), std::nullopt);
  auto replay = run(chats.replay(bob.id, 0, 10));
  ASSERT_EQ(replay.events.size(), 1U);  // the second create wrote nothing
  EXPECT_EQ(replay.events[0].type, "chat_created");
  EXPECT_FALSE(replay.resync_required);
  EXPECT_EQ(run(chats.prune_events(now_micros() + 1'000'000)), 1);
  EXPECT_TRUE(run(chats.replay(bob.id, 0, 10)).resync_required);
  EXPECT_FALSE(run(chats.replay(bob.id, replay.last_seq, 10)).resync_required);
}

// Pruning a backlog larger than one of SQLite's prune slices (2,000 seqs): everything past
// the window goes, nothing inside it, and a replay from before the cut asks for a resync.
TEST_P(StoreContract, PruningABacklogKeepsTheEventsInsideTheWindow) {
  auto ann = make_user("ann");
  auto& chats = store_->chats();
  NewChat chat{ChatType::group, "g", {{ann.id, Role::owner}}, 10};
  const auto chat_id = run(chats.create_chat(chat, [](const CreatedChat& c) {
                         return one_event(c.chat_id, "chat_created");
                       })).chat_id;
  const auto first_seq = run(chats.newest_seq());
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  // Sent together (a few round trips), at the time of sending, as the service does.
  auto send_all = [&](int n) {
    io_.restart();
    for (int i = 0; i < n; ++i) {
      boost::asio::co_spawn(
          io_,
          [&]() -> boost::asio::awaitable<void> {
            NewMessage m{chat_id, ann.id, "x", std::nullopt, std::nullopt, now_micros()};
            co_await chats.send_message(m, on_send);
          },
          boost::asio::detached);
    }
    io_.run();
  };
  constexpr int kOld = 4500;
  constexpr int kNew = 300;
  send_all(kOld);
  const auto last_old = run(chats.newest_seq());
  ASSERT_EQ(last_old - first_seq, kOld);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const auto cut = now_micros();
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  send_all(kNew);
  // Every event up to the newest one past the window: the chat's, then the old sends.
  EXPECT_EQ(run(chats.prune_events(cut)), last_old);
  EXPECT_EQ(run(chats.prune_events(cut)), 0);  // nothing left past the window
  EXPECT_TRUE(run(chats.replay(ann.id, first_seq, 10)).resync_required);
  auto rest = run(chats.replay(ann.id, last_old, kNew + 10));
  EXPECT_FALSE(rest.resync_required);
  EXPECT_EQ(rest.events.size(), static_cast<std::size_t>(kNew));
}

namespace {

std::vector<std::int64_t> ids_of(const std::vector<MessageRecord>& found) {
  std::vector<std::int64_t> out;
  out.reserve(found.size());
  for (const auto& m : found) out.push_back(m.id);
  return out;
}

}  // namespace

TEST_P(StoreContract, SearchFindsRussianAndEnglishWordsAndPrefixes) {
  auto ann = make_user("ann");
  auto& chats = store_->chats();
  NewChat chat{ChatType::group, "g", {{ann.id, Role::owner}}, 10};
  auto created = run(chats.create_chat(
      chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }));
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  std::vector<std::int64_t> ids;
  for (const char* text :
       {"Привет, МИР! Как дела?", "Hello World, how are you", "ёлка и Ёж", "mixed Привет world"}) {
    auto sent = run(chats.send_message(
        {created.chat_id, ann.id, text, std::nullopt, std::nullopt, 20}, on_send));
    ids.push_back(sent->message.id);
  }
  // Terms come lower-cased from chat/search_query; the text's case must not matter.
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"мир"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[0]});
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"прив"}, std::nullopt, 10))),
            (std::vector<std::int64_t>{ids[3], ids[0]}));  // prefix, newest first
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"world", "прив"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[3]});  // every term must match
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"ёж"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[2]});
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"hel"}, created.chat_id, 10))),
            std::vector<std::int64_t>{ids[1]});
  EXPECT_TRUE(run(chats.search(ann.id, {"orld"}, std::nullopt, 10)).empty());  // not infix
  // Prefixes of one and two characters (SQLite answers them from indexes of their own).
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"п"}, std::nullopt, 10))),
            (std::vector<std::int64_t>{ids[3], ids[0]}));
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"w", "пр"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[3]});
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"h"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[1]});
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"ё"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[2]});
  EventsFor<MessageRecord> none = [](const auto&) { return std::vector<NewEvent>{}; };
  ASSERT_TRUE(run(chats.edit_message(member_of_chat(created.chat_id, ann.id), ids[1],
                                     "Goodbye moon", 30, none)));
  EXPECT_TRUE(run(chats.search(ann.id, {"hello"}, std::nullopt, 10)).empty());
  EXPECT_EQ(run(chats.search(ann.id, {"moon"}, std::nullopt, 10)).size(), 1U);
  EXPECT_TRUE(run(chats.search(ann.id, {"h"}, std::nullopt, 10)).empty());  // the old text's
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"m"}, std::nullopt, 10))),
            (std::vector<std::int64_t>{ids[3], ids[1]}));
  // "ё" is "е" and "й" is "и" to search, whichever was written or asked for (terms come
  // lower-cased).
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"еж"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[2]});
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"елк"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[2]});
  const auto tea = run(chats.send_message({created.chat_id, ann.id, "Йод и ЧАЙ, ежевика",
                                           std::nullopt, std::nullopt, 40},
                                          on_send))
                       ->message.id;
  for (const char* term : {"иод", "йод", "чаи", "чай", "ёжевика"}) {
    EXPECT_EQ(ids_of(run(chats.search(ann.id, {term}, std::nullopt, 10))),
              std::vector<std::int64_t>{tea})
        << term;
  }
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"ё"}, std::nullopt, 10))),
            (std::vector<std::int64_t>{tea, ids[2]}));
  ASSERT_TRUE(
      run(chats.edit_message(member_of_chat(created.chat_id, ann.id), ids[2], "ёжик", 50, none)));
  EXPECT_TRUE(run(chats.search(ann.id, {"елка"}, std::nullopt, 10)).empty());
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"ежик"}, std::nullopt, 10))),
            std::vector<std::int64_t>{ids[2]});
  auto bob = make_user("bob");
  EXPECT_TRUE(run(chats.search(bob.id, {"moon"}, std::nullopt, 10)).empty());  // not his chat
}

// Search in one chat, or in every chat of a user in few or many chats (SQLite names up to
// 64 chats in its index query and walks everyone's matches past that): the same answers.
TEST_P(StoreContract, SearchFindsTheCallersChatsWhetherFewOrMany) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  auto group = [&](std::vector<std::pair<std::int64_t, Role>> members) {
    NewChat chat{ChatType::group, "g", std::move(members), 10};
    return run(chats.create_chat(
                   chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }))
        .chat_id;
  };
  auto send = [&](std::int64_t chat_id, std::int64_t sender, const std::string& text) {
    return run(chats.send_message({chat_id, sender, text, std::nullopt, std::nullopt, 20}, on_send))
        ->message.id;
  };
  const auto theirs = group({{bob.id, Role::owner}});
  send(theirs, bob.id, "needle of bob");
  std::vector<std::int64_t> mine;  // ann's needles, newest first at the end
  std::vector<std::int64_t> chat_ids;
  for (int i = 0; i < 70; ++i) {
    chat_ids.push_back(group({{ann.id, Role::owner}, {bob.id, Role::member}}));
    mine.push_back(
        send(chat_ids.back(), i % 2 == 0 ? ann.id : bob.id, "needle k" + std::to_string(i)));
    if (i == 2) {
      // Three chats: named in the query.
      EXPECT_EQ(ids_of(run(chats.search(ann.id, {"ne"}, std::nullopt, 100))),
                (std::vector<std::int64_t>{mine[2], mine[1], mine[0]}));
    }
  }
  const std::vector<std::int64_t> newest_first(mine.rbegin(), mine.rend());
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"needle"}, std::nullopt, 100))), newest_first);
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"n"}, std::nullopt, 5))),
            std::vector<std::int64_t>(newest_first.begin(), newest_first.begin() + 5));
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"needle", "k7"}, std::nullopt, 100))),
            std::vector<std::int64_t>{mine[7]});
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"needle"}, chat_ids[40], 100))),
            std::vector<std::int64_t>{mine[40]});
  EXPECT_TRUE(run(chats.search(ann.id, {"needle"}, theirs, 100)).empty());  // not her chat
  // Terms match the text, not the chat a message is in.
  EXPECT_TRUE(run(chats.search(ann.id, {std::to_string(chat_ids[40])}, std::nullopt, 100)).empty());
  // Bob is in 71 chats: everyone's matches are walked, his alone are found.
  auto bobs = ids_of(run(chats.search(bob.id, {"needle"}, std::nullopt, 100)));
  ASSERT_EQ(bobs.size(), 71U);
  EXPECT_EQ(std::vector<std::int64_t>(bobs.begin(), bobs.end() - 1), newest_first);

  // The newest matches spread over her first chats and her last: the limit takes the
  // newest of all, in order.
  const auto late0 = send(chat_ids[0], ann.id, "needle late");
  const auto late1 = send(chat_ids[69], ann.id, "needle late");
  const auto late2 = send(chat_ids[1], ann.id, "needle late");
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"needle"}, std::nullopt, 2))),
            (std::vector<std::int64_t>{late2, late1}));
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"n"}, std::nullopt, 4))),
            (std::vector<std::int64_t>{late2, late1, late0, newest_first[0]}));
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"late"}, std::nullopt, 100))),
            (std::vector<std::int64_t>{late2, late1, late0}));
  std::vector<std::int64_t> everything{late2, late1, late0};
  everything.insert(everything.end(), newest_first.begin(), newest_first.end());
  EXPECT_EQ(ids_of(run(chats.search(ann.id, {"needle"}, std::nullopt, 100))), everything);
  EXPECT_TRUE(run(chats.search(ann.id, {"needle"}, std::nullopt, 0)).empty());

  // On SQLite a caller in more than 64 chats has everyone's matches walked for a moment,
  // then the chats named 64 at a time and the answers merged: taken at once, that way
  // gives the same answers.
  if (GetParam().name != "sqlite") return;
  config::DatabaseSettings named_at_once;
  named_at_once.sqlite_path = (scratch_ / "db.sqlite3").string();
  named_at_once.read_connections = 1;
  named_at_once.sqlite_search_walk_micros = 0;
  auto named = sqlite::open_store(named_at_once);
  const std::vector<std::tuple<std::int64_t, std::vector<std::string>, int>> searches{
      {ann.id, {"needle"}, 2},   {ann.id, {"n"}, 4},    {ann.id, {"late"}, 100},
      {ann.id, {"needle"}, 100}, {ann.id, {"ne"}, 1},   {ann.id, {"needle", "k7"}, 100},
      {bob.id, {"needle"}, 100}, {bob.id, {"n"}, 3},    {ann.id, {"none"}, 10},
      {ann.id, {"needle"}, 0},   {bob.id, {"late"}, 2}, {ann.id, {"k6"}, 100}};
  for (const auto& [user, terms, limit] : searches) {
    const auto expected = ids_of(run(chats.search(user, terms, std::nullopt, limit)));
    EXPECT_EQ(ids_of(run(named->chats().search(user, terms, std::nullopt, limit))), expected)
        << terms[0] << " limit " << limit;
  }
  EXPECT_EQ(ids_of(run(named->chats().search(ann.id, {"needle"}, std::nullopt, 100))), everything);
}

namespace {

// On SQLite: the full-text index holds exactly the terms of the live messages' current
// texts (folded, as the index's view shows them) and their chats, compared, term by term
// and position by position, with a new index made from them.
// A removal made with the wrong text leaves terms behind that search may never show.
void expect_index_matches_texts(const std::filesystem::path& file) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  auto count = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    const std::int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
  };
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE VIRTUAL TABLE temp.actual USING fts5vocab(main, messages_fts, "
                         "'instance');"
                         "CREATE VIRTUAL TABLE temp.fresh USING fts5(text, chat_id, tokenize = "
                         "'unicode61 remove_diacritics 2');"
                         "INSERT INTO temp.fresh(rowid, text, chat_id) "
                         "SELECT v.id, v.text, v.chat_id FROM messages_search_text v "
                         "JOIN messages m ON m.id = v.id WHERE m.is_deleted = 0;"
                         "CREATE VIRTUAL TABLE temp.expected USING fts5vocab(temp, fresh, "
                         "'instance');",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  EXPECT_GT(count("SELECT count(*) FROM temp.expected"), 0);
  // And FTS5's own check of the index against its content (the view).
  EXPECT_EQ(sqlite3_exec(db,
                         "INSERT INTO messages_fts(messages_fts, rank) "
                         "VALUES ('integrity-check', 1)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT term, doc, col, offset FROM temp.actual EXCEPT "
                  "SELECT term, doc, col, offset FROM temp.expected)"),
            0);
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT term, doc, col, offset FROM temp.expected EXCEPT "
                  "SELECT term, doc, col, offset FROM temp.actual)"),
            0);
  sqlite3_close(db);
}

// Runs the writes together, so that on SQLite they share group commits: each write's
// index changes wait for its group's COMMIT, after the writes queued before it.
void run_together(boost::asio::io_context& io,
                  const std::vector<std::function<boost::asio::awaitable<void>()>>& writes) {
  io.restart();
  for (const auto& w : writes) boost::asio::co_spawn(io, w(), boost::asio::detached);
  io.run();
}

}  // namespace

// Forwards of messages that their senders edit and delete for everyone at the same time,
// in batches with sends to the same chat: every write completes, each forward copies its
// original as it stood (or is refused once it is deleted), and on PostgreSQL no lock cycle
// was broken by the server (a forward batch locked the originals before the chats, and an
// edit its chat before the message).
TEST_P(StoreContract, ForwardsRacingEditsAndDeletionsOfTheirOriginalsTakeNoDeadlock) {
  auto ann = make_user("fann");
  auto bob = make_user("fbob");
  auto& chats = store_->chats();
  const auto id =
      make_chat({ChatType::group, "f", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10});
  const auto elsewhere =
      make_chat({ChatType::group, "e", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10});
  auto& deadlocks = metrics::metrics().db_retries.with({"deadlock"});
  const auto deadlocks_before = deadlocks.value();
  EventsFor<SentMessage> on_send = [](const SentMessage&) { return std::vector<NewEvent>{}; };
  EventsFor<MessageRecord> none = [](const auto&) { return std::vector<NewEvent>{}; };
  // Rounds of a few: each round's first forward is a batch of its own, which the others'
  // edits can meet between its two lock steps.
  constexpr int kRounds = 40;
  constexpr int kOriginals = 6;
  for (int round = 0; round < kRounds; ++round) {
    const auto originals = send_numbered(id, ann.id, kOriginals, false);
    std::vector<std::optional<SentMessage>> forwards(kOriginals);
    std::vector<std::function<boost::asio::awaitable<void>()>> writes;
    for (int i = 0; i < kOriginals; ++i) {
      const auto original = originals[static_cast<std::size_t>(i)];
      const auto into = i % 2 == 0 ? id : elsewhere;
      writes.emplace_back([&, i, original, into]() -> boost::asio::awaitable<void> {
        const NewMessage copy{into, bob.id, "m", std::nullopt, original, 30, original};
        forwards[static_cast<std::size_t>(i)] = co_await chats.send_message(copy, on_send);
      });
      writes.emplace_back([&, i, original]() -> boost::asio::awaitable<void> {
        if (i % 3 == 0) {
          co_await chats.delete_message(Standing{id, ann.id, Role::owner}, original, none,
                                        no_unpins);
        } else {
          std::string text = numbered("edited ", i);
          co_await chats.edit_message(member_of_chat(id, ann.id), original, text, 31, none);
        }
      });
      writes.emplace_back([&, i]() -> boost::asio::awaitable<void> {
        const NewMessage plain{id, bob.id, numbered("plain ", i), std::nullopt, std::nullopt, 32};
        co_await chats.send_message(plain, on_send);
      });
    }
    run_together(io_, writes);
    for (int i = 0; i < kOriginals; ++i) {
      const auto& f = forwards[static_cast<std::size_t>(i)];
      ASSERT_TRUE(f) << i;
      if (f->original_gone) {
        EXPECT_EQ(i % 3, 0) << i;  // only the deleted ones
        continue;
      }
      const std::string edited = numbered("edited ", i);
      EXPECT_TRUE(f->message.text == numbered("m", i) || f->message.text == edited)
          << i << ": " << f->message.text;
    }
  }
  EXPECT_EQ(deadlocks.value(), deadlocks_before);
}

// An owner leaving (their row removed, their successor's promoted) while deliveries to
// both move their watermarks: the two lock the same member rows, in one order, so no
// cycle is broken by the server. The successor has the lower id: removal first, then
// promotion, is the order deliveries do not take.
TEST_P(StoreContract, AnOwnerLeavingDuringDeliveriesToTheirSuccessorTakesNoDeadlock) {
  auto heir = make_user("dheir");
  auto& chats = store_->chats();
  auto& deadlocks = metrics::metrics().db_retries.with({"deadlock"});
  const auto deadlocks_before = deadlocks.value();
  ChooseOwner oldest = [](const MemberRecord&, const std::vector<MemberRecord>& remaining) {
    return remaining.empty() ? std::optional<std::int64_t>() : remaining.front().user_id;
  };
  EventsFor<Departure> on_leave = [](const auto&) { return std::vector<NewEvent>{}; };
  EventsFor<DeliveredBatch> on_delivered = [](const auto&) { return std::vector<NewEvent>{}; };
  constexpr int kRounds = 40;
  for (int round = 0; round < kRounds; ++round) {
    auto owner = make_user(numbered("downer", round));
    ASSERT_LT(heir.id, owner.id);
    const auto id =
        make_chat({ChatType::group, "d", {{owner.id, Role::owner}, {heir.id, Role::admin}}, 10});
    const auto sent = send_numbered(id, owner.id, 2, false);
    std::vector<std::function<boost::asio::awaitable<void>()>> writes;
    for (int i = 0; i < 3; ++i) {
      writes.emplace_back([&, i]() -> boost::asio::awaitable<void> {
        DeliveredNotes notes;
        notes[id] = {{heir.id, sent[1] - 1 + i % 2}, {owner.id, sent[1]}};
        co_await chats.mark_delivered_many(std::move(notes), on_delivered);
      });
      if (i == 1) {
        writes.emplace_back([&]() -> boost::asio::awaitable<void> {
          co_await chats.remove_member(id, owner.id, std::nullopt, oldest, on_leave);
        });
      }
    }
    run_together(io_, writes);
    EXPECT_EQ(run(chats.find_member(id, heir.id))->role, Role::owner) << round;
    EXPECT_FALSE(run(chats.find_member(id, owner.id))) << round;
  }
  EXPECT_EQ(deadlocks.value(), deadlocks_before);
}

// Sends by two members in one batch, the higher id first, while deliveries to both move
// their watermarks: the batch updates the senders' rows in its own order, deliveries lock
// them in user order, and the batch now locks them in that order first, so no cycle is
// broken by the server.
TEST_P(StoreContract, SendsRacingDeliveriesToTheirSendersTakeNoDeadlock) {
  auto low = make_user("slow");
  auto& chats = store_->chats();
  auto& deadlocks = metrics::metrics().db_retries.with({"deadlock"});
  const auto deadlocks_before = deadlocks.value();
  EventsFor<SentMessage> on_send = [](const SentMessage&) { return std::vector<NewEvent>{}; };
  EventsFor<DeliveredBatch> on_delivered = [](const auto&) { return std::vector<NewEvent>{}; };
  constexpr int kRounds = 200;
  for (int round = 0; round < kRounds; ++round) {
    auto high = make_user(numbered("shigh", round));
    ASSERT_LT(low.id, high.id);
    const auto id =
        make_chat({ChatType::group, "s", {{high.id, Role::owner}, {low.id, Role::member}}, 10});
    const auto first = send_numbered(id, high.id, 1, false);
    std::vector<std::function<boost::asio::awaitable<void>()>> writes;
    for (int i = 0; i < 4; ++i) {
      const auto sender = i % 2 == 0 ? high.id : low.id;
      writes.emplace_back([&, sender, i]() -> boost::asio::awaitable<void> {
        const NewMessage m{id, sender, numbered("s", i), std::nullopt, std::nullopt, 40 + i};
        co_await chats.send_message(m, on_send);
      });
      writes.emplace_back([&]() -> boost::asio::awaitable<void> {
        DeliveredNotes notes;
        notes[id] = {{low.id, first[0]}, {high.id, first[0]}};
        co_await chats.mark_delivered_many(std::move(notes), on_delivered);
      });
    }
    run_together(io_, writes);
    const auto page = run(chats.history(id, high.id, std::nullopt, std::nullopt, 10));
    ASSERT_TRUE(page);
    EXPECT_EQ(page->messages.size(), 5U) << round;
  }
  EXPECT_EQ(deadlocks.value(), deadlocks_before);
}

// A chat-wide edit, deletion, pin or unpin of a message (skips_hiders) names the members
// who hid it, as the log stood at its own commit: a hide committed just before, even in
// the same group commit, is seen, and one committed after is not.
TEST_P(StoreContract, EventsAboutAMessageNameTheMembersWhoHidItAtTheirCommit) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto cat = make_user("cat");
  auto& chats = store_->chats();
  HeardEvents log(chats);
  const auto chat =
      make_chat({ChatType::group,
                 "g",
                 {{ann.id, Role::owner}, {bob.id, Role::member}, {cat.id, Role::member}},
                 10});
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  auto about = [](const char* type) {
    return [type](const auto& record) {
      NewEvent e = one_event(record.chat_id, type)[0];
      if constexpr (std::is_same_v<std::decay_t<decltype(record)>, PinRecord>) {
        e.message_id = record.message_id;
      } else {
        e.message_id = record.id;
      }
      return std::vector<NewEvent>{e};
    };
  };
  auto last_heard = [&](const char* type) {
    const auto heard = log.all();
    auto it = std::find_if(heard.rbegin(), heard.rend(),
                           [&](const EventRecord& e) { return e.type == type; });
    return it == heard.rend() ? EventRecord{} : *it;
  };

  // One after the other: bob hid the message, cat did not.
  auto m = run(chats.send_message({chat, ann.id, "hello", "h1", std::nullopt, 20}, on_send));
  ASSERT_TRUE(m && m->created);
  EventsFor<MessageRecord> hide = about("hide");
  ASSERT_TRUE(run(chats.hide_message(bob.id, m->message, hide)));
  EventsFor<MessageRecord> edit = about("edit");
  ASSERT_TRUE(run(
      chats.edit_message(member_of_chat(chat, ann.id), m->message.id, "hello again", 30, edit)));
  EXPECT_EQ(last_heard("edit").hidden_from, std::vector<std::int64_t>{bob.id});
  EventsFor<PinRecord> pin = about("pin");
  auto pinned = run(chats.pin(member_of_chat(chat, ann.id), m->message.id, 40, pin));
  ASSERT_TRUE(pinned && pinned->second);
  EXPECT_EQ(last_heard("pin").hidden_from, std::vector<std::int64_t>{bob.id});
  EventsFor<PinRecord> unpin = about("unpin");
  ASSERT_TRUE(run(chats.unpin(member_of_chat(chat, ann.id), pinned->first.id, unpin)));
  EXPECT_EQ(last_heard("unpin").hidden_from, std::vector<std::int64_t>{bob.id});
  EventsFor<MessageRecord> plain = about("plain");  // no such type: nobody left out
  ASSERT_TRUE(run(chats.edit_message(member_of_chat(chat, ann.id), m->message.id, "hello once more",
                                     50, plain)));
  EXPECT_TRUE(last_heard("plain").hidden_from.empty());

  // Together (on SQLite, one group commit): cat's hide and edits of the message race, and
  // each edit leaves cat out exactly when it committed after the hide.
  std::vector<std::function<boost::asio::awaitable<void>()>> writes;
  const auto id = m->message.id;
  const auto message = m->message;
  for (int i = 0; i < 6; ++i) {
    if (i == 3) {
      writes.emplace_back([&chats, &cat, message, hide]() -> boost::asio::awaitable<void> {
        co_await chats.hide_message(cat.id, message, hide);
      });
    }
    writes.emplace_back(
        [&chats, by = member_of_chat(chat, ann.id), id, i, edit]() -> boost::asio::awaitable<void> {
          co_await chats.edit_message(by, id, "edit " + std::to_string(i), 60 + i, edit);
        });
  }
  run_together(io_, writes);
  const auto heard = log.all();
  std::int64_t cat_seq = 0;
  int hides = 0;
  for (const auto& e : heard) {
    if (e.type != "hide") continue;
    cat_seq = std::max(cat_seq, e.seq);  // bob's came first
    ++hides;
  }
  ASSERT_EQ(hides, 2);
  int edits = 0;
  for (auto it = heard.rbegin(); it != heard.rend() && edits < 6; ++it) {
    if (it->type != "edit") continue;
    ++edits;
    auto expected = it->seq > cat_seq ? std::vector<std::int64_t>{bob.id, cat.id}
                                      : std::vector<std::int64_t>{bob.id};
    auto got = it->hidden_from;
    std::sort(got.begin(), got.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(got, expected) << "edit at seq " << it->seq << ", cat's hide at " << cat_seq;
  }
  EXPECT_EQ(edits, 6);
}

// A node catching up from the log delivers what it reads as it would have delivered it live:
// the chat-wide events about a message leave out the members who hid it (as they are now).
TEST_P(StoreContract, EventsReadFromTheLogNameTheMembersWhoHidTheirMessage) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto cat = make_user("cat");
  auto& chats = store_->chats();
  const auto chat =
      make_chat({ChatType::group,
                 "g",
                 {{ann.id, Role::owner}, {bob.id, Role::member}, {cat.id, Role::member}},
                 10});
  const std::int64_t start = run(chats.newest_seq());
  auto about = [](const char* type, std::optional<std::int64_t> only = std::nullopt) {
    return [type, only](const auto& record) {
      NewEvent e = one_event(record.chat_id, type)[0];
      e.user_id = only;
      if constexpr (std::is_same_v<std::decay_t<decltype(record)>, PinRecord>) {
        e.message_id = record.message_id;
      } else {
        e.message_id = record.id;
      }
      return std::vector<NewEvent>{e};
    };
  };
  EventsFor<SentMessage> on_send = [&](const SentMessage& sent) {
    return about("message")(sent.message);
  };
  auto m = run(chats.send_message({chat, ann.id, "hello", "h1", std::nullopt, 20}, on_send));
  auto other = run(chats.send_message({chat, ann.id, "other", "h2", std::nullopt, 21}, on_send));
  ASSERT_TRUE(m && other);
  EventsFor<MessageRecord> edit = about("edit");
  EventsFor<PinRecord> pin = about("pin");
  EventsFor<PinRecord> unpin = about("unpin");
  EventsFor<MessageRecord> deletion = about("delete");
  // Pinned before bob hid it, unpinned and deleted after (the deletion drops its edits
  // from the log); cat hid the other one, edited after.
  auto pinned = run(chats.pin(member_of_chat(chat, ann.id), m->message.id, 40, pin));
  ASSERT_TRUE(pinned && pinned->second);
  EventsFor<MessageRecord> bob_hides = about("delete", bob.id);
  ASSERT_TRUE(run(chats.hide_message(bob.id, m->message, bob_hides)));
  EventsFor<MessageRecord> cat_hides = about("delete", cat.id);
  ASSERT_TRUE(run(chats.hide_message(cat.id, other->message, cat_hides)));
  ASSERT_TRUE(run(chats.unpin(member_of_chat(chat, ann.id), pinned->first.id, unpin)));
  ASSERT_TRUE(run(
      chats.edit_message(member_of_chat(chat, ann.id), other->message.id, "other too", 50, edit)));
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, m->message.id, deletion, no_unpins)));

  std::vector<std::pair<std::string, std::vector<std::int64_t>>> got;
  for (const auto& e : run(chats.events_since({chat}, {}, start, 100))) {
    got.emplace_back(e.type + (e.user_id ? "/" + std::to_string(*e.user_id) : ""), e.hidden_from);
  }
  const std::vector<std::int64_t> bob_only{bob.id}, cat_only{cat.id}, nobody;
  const std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected{
      {"message", nobody},
      {"message", nobody},
      {"pin", bob_only},
      {"delete/" + std::to_string(bob.id), nobody},
      {"delete/" + std::to_string(cat.id), nobody},
      {"unpin", bob_only},
      {"edit", cat_only},
      {"delete", bob_only}};
  EXPECT_EQ(got, expected);
}

// Search answers from each message's current text, whatever order its sending, edits and
// deletion reached the store in, several of them in one group commit.
TEST_P(StoreContract, SearchFollowsEditsAndDeletionsMadeTogether) {
  auto ann = make_user("ann");
  auto& chats = store_->chats();
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  EventsFor<MessageRecord> none = [](const auto&) { return std::vector<NewEvent>{}; };
  auto chat_id = [&](const char* name) {
    NewChat chat{ChatType::group, name, {{ann.id, Role::owner}}, 10};
    return run(chats.create_chat(
                   chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }))
        .chat_id;
  };
  const auto kept = chat_id("kept");
  const auto doomed = chat_id("doomed");
  constexpr int kMessages = 24;
  // Search matches prefixes: "third1z" must not find "third10z".
  auto word = [](int i) { return std::to_string(i) + "z"; };
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> doomed_ids;
  for (int i = 0; i < kMessages; ++i) {
    const auto text = "first" + word(i) + " common";
    ids.push_back(
        run(chats.send_message({kept, ann.id, text, std::nullopt, std::nullopt, 20}, on_send))
            ->message.id);
    doomed_ids.push_back(
        run(chats.send_message({doomed, ann.id, text, std::nullopt, std::nullopt, 20}, on_send))
            ->message.id);
  }
  // Each message edited twice; every third then deleted; new messages sent and edited in
  // between; the other chat's messages edited, then the chat deleted.
  std::vector<std::function<boost::asio::awaitable<void>()>> writes;
  std::vector<std::int64_t> late;
  for (int i = 0; i < kMessages; ++i) {
    const auto id = ids[static_cast<std::size_t>(i)];
    const auto n = word(i);
    // Arguments are named locals: g++ 12 mishandles some temporaries in a co_await.
    writes.emplace_back([&, id, i, n]() -> boost::asio::awaitable<void> {
      std::string second = "second" + n + " common";
      co_await chats.edit_message(member_of_chat(kept, ann.id), id, second, 30, none);
      std::string third = "third" + n + " common";
      co_await chats.edit_message(member_of_chat(kept, ann.id), id, third, 31, none);
      if (i % 3 == 0) co_await chats.delete_message(std::nullopt, id, none, no_unpins);
    });
    writes.emplace_back([&, n]() -> boost::asio::awaitable<void> {
      NewMessage message{kept, ann.id, "late" + n + " common", std::nullopt, std::nullopt, 40};
      auto sent = co_await chats.send_message(message, on_send);
      std::string later = "later" + n + " common";
      co_await chats.edit_message(member_of_chat(kept, ann.id), sent->message.id, later, 41, none);
      late.push_back(sent->message.id);
    });
    const auto other = doomed_ids[static_cast<std::size_t>(i)];
    writes.emplace_back([&, other, n]() -> boost::asio::awaitable<void> {
      std::string gone = "gone" + n;
      co_await chats.edit_message(member_of_chat(doomed, ann.id), other, gone, 30, none);
    });
  }
  EventsFor<std::vector<MemberRecord>> no_events = [](const auto&) {
    return std::vector<NewEvent>{};
  };
  writes.emplace_back([&]() -> boost::asio::awaitable<void> {
    co_await chats.delete_chat(member_of_chat(doomed, ann.id), no_events);
  });
  run_together(io_, writes);
  ASSERT_EQ(late.size(), static_cast<std::size_t>(kMessages));

  auto found = [&](const std::string& term) {
    return ids_of(run(chats.search(ann.id, {term}, std::nullopt, 100)));
  };
  for (int i = 0; i < kMessages; ++i) {
    const auto n = word(i);
    const auto id = ids[static_cast<std::size_t>(i)];
    EXPECT_TRUE(found("first" + n).empty()) << i;
    EXPECT_TRUE(found("second" + n).empty()) << i;
    EXPECT_TRUE(found("gone" + n).empty()) << i;
    EXPECT_TRUE(found("late" + n).empty()) << i;
    EXPECT_EQ(found("third" + n),
              i % 3 == 0 ? std::vector<std::int64_t>{} : std::vector<std::int64_t>{id})
        << i;
  }
  std::vector<std::int64_t> live;
  for (int i = 0; i < kMessages; ++i) {
    if (i % 3 != 0) live.push_back(ids[static_cast<std::size_t>(i)]);
  }
  live.insert(live.end(), late.begin(), late.end());
  std::sort(live.rbegin(), live.rend());
  EXPECT_EQ(found("common"), live);  // newest first, nothing deleted, nothing twice
  if (GetParam().name == "sqlite") expect_index_matches_texts(scratch_ / "db.sqlite3");
}

// A database made before the text index read from the messages rows (migration 4), had
// prefix indexes (migration 8), held each message's chat (migration 9) and folded "ё" and
// "й" (migration 10): its index, a copy of every live text, is made again from the rows,
// and edits after the migration remove the terms the rows held.
// Usernames keyed by the lower case of their upper case: the migration rewrites the keys
// stored as lower case where the two differ, as auth::username_key now makes them; of two
// users whose keys would become one, the earlier takes it, and a key already held stays.
TEST_P(StoreContract, MigrationKeysUsernamesByTheirUpperCase) {
  struct Old {
    const char* name;
    const char* old_key;  // the lower case, as stored before
  };
  const Old olds[] = {
      {"\u039d\u03af\u03ba\u03bf\u03c2", "\u03bd\u03af\u03ba\u03bf\u03c2"},  // Νίκος
      {"ODYS\u03a3", "odys\u03c3"},  // ODYSΣ: its key does not change
      {"odys\u03c2", "odys\u03c2"},  // odysς: its new key is held already
      {"k\u0131s", "k\u0131s"},      // kıs and kiſ: both become "kis", the earlier takes it
      {"ki\u017f", "ki\u017f"},
      {"\u1c82n", "\u1c82n"},  // ᲂn (Cyrillic rounded o)
      {"plain", "plain"},
  };
  std::vector<std::int64_t> ids;
  for (const auto& o : olds) {
    NewUser u{o.name, o.old_key, "x@example.com", "hash", false, false, 1'000};
    auto created = run(store_->users().create(u));
    ASSERT_TRUE(created) << o.name;
    ids.push_back(created->id);
  }
  const auto applied = rerun_migration("username_keys_by_upper_case", "");
  ASSERT_EQ(applied.size(), 1U);
  EXPECT_EQ(applied[0].name, "username_keys_by_upper_case");

  // Who holds a key (0: nobody).
  auto holder = [&](const std::string& key) {
    auto u = run(store_->users().find_by_username_key(key));
    return u ? u->id : 0;
  };
  EXPECT_EQ(holder("\u03bd\u03af\u03ba\u03bf\u03c3"), ids[0]);
  EXPECT_EQ(holder("\u03bd\u03af\u03ba\u03bf\u03c2"), 0);
  EXPECT_EQ(holder("odys\u03c3"), ids[1]);
  EXPECT_EQ(holder("odys\u03c2"), ids[2]);  // "odysσ" is held by ODYSΣ
  EXPECT_EQ(holder("kis"), ids[3]);
  EXPECT_EQ(holder("k\u0131s"), 0);
  EXPECT_EQ(holder("ki\u017f"), ids[4]);  // "kis" went to kıs
  EXPECT_EQ(holder("\u043en"), ids[5]);
  EXPECT_EQ(holder("plain"), ids[6]);
  for (const std::size_t i : {0, 1, 3, 5, 6}) {  // as a login keys the name now
    EXPECT_EQ(holder(auth::username_key(olds[i].name)), ids[i]) << olds[i].name;
  }
  // ΝΊΚΟΣ logs in as Νίκος.
  EXPECT_EQ(holder(auth::username_key("\u039d\u038a\u039a\u039f\u03a3")), ids[0]);
  EXPECT_TRUE(store_->migrate().empty());
}

TEST_P(StoreContract, MigrationRemakesAnOlderTextIndexFromTheMessages) {
  if (GetParam().name != "sqlite") GTEST_SKIP() << "SQLite's full-text index";
  auto ann = make_user("ann");
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  EventsFor<MessageRecord> none = [](const auto&) { return std::vector<NewEvent>{}; };
  NewChat chat{ChatType::group, "g", {{ann.id, Role::owner}}, 10};
  const auto chat_id = run(store_->chats().create_chat(chat, [](const CreatedChat& c) {
                         return one_event(c.chat_id, "chat_created");
                       })).chat_id;
  auto send = [&](const char* text) {
    return run(store_->chats().send_message({chat_id, ann.id, text, std::nullopt, std::nullopt, 20},
                                            on_send))
        ->message.id;
  };
  const auto edited = send("alpha first");
  const auto deleted = send("bravo first");
  const auto plain = send("charlie first");
  ASSERT_TRUE(run(store_->chats().edit_message(member_of_chat(chat_id, ann.id), edited,
                                               "alpha second", 30, none)));
  ASSERT_TRUE(run(store_->chats().delete_message(std::nullopt, deleted, none, no_unpins)));
  store_.reset();

  // What the index was before: its own copy of each live message's text.
  const auto file = scratch_ / "db.sqlite3";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE messages_fts;"
                         "CREATE VIRTUAL TABLE messages_fts USING fts5(text, tokenize = "
                         "'unicode61 remove_diacritics 2');"
                         "INSERT INTO messages_fts(rowid, text) "
                         "SELECT id, text FROM messages WHERE is_deleted = 0;"
                         "DROP VIEW messages_search_text;"
                         "DELETE FROM schema_migrations WHERE version IN (4, 8, 9, 10, 11);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  store_ = GetParam().open(scratch_.string(), io_.get_executor());
  const auto applied = store_->migrate();
  ASSERT_EQ(applied.size(), 5U);
  EXPECT_EQ(applied[0].version, 4);
  EXPECT_EQ(applied[1].version, 8);   // the index of short prefixes, made from the rows
  EXPECT_EQ(applied[2].version, 9);   // and of each message's chat
  EXPECT_EQ(applied[3].version, 10);  // and of folded Cyrillic letters
  EXPECT_EQ(applied[4].version, 11);
  expect_index_matches_texts(file);
  auto found = [&](const char* term) {
    return ids_of(run(store_->chats().search(ann.id, {term}, std::nullopt, 10)));
  };
  EXPECT_EQ(found("first"), std::vector<std::int64_t>{plain});
  EXPECT_EQ(found("alpha"), std::vector<std::int64_t>{edited});
  EXPECT_TRUE(found("bravo").empty());
  EXPECT_EQ(found("c"), std::vector<std::int64_t>{plain});
  EXPECT_TRUE(found("b").empty());
  ASSERT_TRUE(run(store_->chats().edit_message(member_of_chat(chat_id, ann.id), plain,
                                               "charlie third", 40, none)));
  EXPECT_TRUE(found("first").empty());
  EXPECT_EQ(found("third"), std::vector<std::int64_t>{plain});
  expect_index_matches_texts(file);
}

// A forward whose original is gone stores nothing, and answers for itself alone: another
// send with its client_id, at once (in one batch on PostgreSQL), is stored.
TEST_P(StoreContract, AForwardOfAGoneOriginalAnswersOnlyForItself) {
  auto ann = make_user("ann");
  auto& chats = store_->chats();
  NewChat chat{ChatType::group, "g", {{ann.id, Role::owner}}, 10};
  const auto g = run(chats.create_chat(chat, [](const CreatedChat& c) {
                   return one_event(c.chat_id, "chat_created");
                 })).chat_id;
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  const auto gone =
      run(chats.send_message({g, ann.id, "gone", std::nullopt, std::nullopt, 11}, on_send))
          ->message.id;
  const auto live =
      run(chats.send_message({g, ann.id, "live", std::nullopt, std::nullopt, 12}, on_send))
          ->message.id;
  auto none = [](const MessageRecord&) { return std::vector<NewEvent>{}; };
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, gone, none, no_unpins)));
  // Pairs with one key each: a forward of the deleted message, then a plain send (keys
  // "p0".."p7") or a forward of the live one ("f0".."f7").
  std::vector<NewMessage> sends;
  for (int i = 0; i < 8; ++i) {
    const std::string plain = numbered("p", i);
    const std::string fwd = numbered("f", i);
    sends.push_back({g, ann.id, "gone", plain, gone, 20 + i, gone});
    sends.push_back({g, ann.id, "plain", plain, std::nullopt, 20 + i});
    sends.push_back({g, ann.id, "gone", fwd, gone, 20 + i, gone});
    sends.push_back({g, ann.id, "live", fwd, live, 20 + i, live});
  }
  const auto results = send_at_once(std::move(sends));
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i]) << i;
    if (i % 2 == 0) {
      EXPECT_TRUE(results[i]->original_gone) << i;
      continue;
    }
    EXPECT_FALSE(results[i]->original_gone) << i;
    EXPECT_TRUE(results[i]->created) << i;
    const bool forward = i % 4 == 3;
    EXPECT_EQ(results[i]->message.text, forward ? "live" : "plain") << i;
    EXPECT_EQ(results[i]->message.forwarded_from, forward ? std::optional(live) : std::nullopt)
        << i;
  }
}

// Letters with marks past Latin-1 and Latin Extended-A are found without them, on both
// stores: SQLite's tokenizer folds them, and PostgreSQL's index the same (search_fold_test).
TEST_P(StoreContract, SearchFindsLatinLettersWithoutTheirMarks) {
  auto ann = make_user("ann");
  auto& chats = store_->chats();
  NewChat chat{ChatType::group, "g", {{ann.id, Role::owner}}, 10};
  const auto g = make_chat(chat);
  const auto vietnamese = send_text(g, ann.id, "Tiếng Việt", 20);
  const auto pinyin = send_text(g, ann.id, "Běijīng ǍǏ", 21);
  const auto plain = send_text(g, ann.id, "viet beijing", 22);
  auto found = [&](std::vector<std::string> terms) {
    auto ids = ids_of(run(chats.search(ann.id, terms, std::nullopt, 10)));
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  EXPECT_EQ(found({"viet"}), (std::vector<std::int64_t>{vietnamese, plain}));
  EXPECT_EQ(found({"tieng", "viet"}), std::vector<std::int64_t>{vietnamese});
  EXPECT_EQ(found({"việt"}), (std::vector<std::int64_t>{vietnamese, plain}));
  EXPECT_EQ(found({"beij"}), (std::vector<std::int64_t>{pinyin, plain}));
  EXPECT_EQ(found({"ǎǐ"}), std::vector<std::int64_t>{pinyin});
  EXPECT_EQ(found({"ai"}), std::vector<std::int64_t>{pinyin});
}

// PostgreSQL's migration 17 folds the index words of messages stored before it as new
// sends fold theirs: each letter of U+0080..U+1FFF as versions that folded none wrote it
// (lower-cased) becomes what unicode::without_diacritics makes of it.
TEST_P(StoreContract, MigrationFoldsTheSearchWordsOfOlderMessages) {
  if (GetParam().name != "postgres") GTEST_SKIP() << "SQLite's tokenizer folds as it reads";
  auto ann = make_user("ann");
  NewChat chat{ChatType::group, "g", {{ann.id, Role::owner}}, 10};
  const auto id = send_text(make_chat(chat), ann.id, "x", 20);
  // Words of one letter after "q", of every letter.
  std::set<std::string> before, after;
  std::string words;
  for (char32_t cp = 0x80; cp < 0x2000; ++cp) {
    if (!unicode::is_alnum(cp)) continue;
    const std::string letter = unicode::to_lower(unicode::encode({cp}));
    if (!before.insert(std::string("q").append(letter)).second) continue;
    after.insert(std::string("q").append(unicode::without_diacritics(letter)));
    words.append(words.empty() ? "'q" : ",'q").append(letter).append("'");
  }
  ASSERT_GT(before.size(), 1000U);
  ASSERT_LT(after.size(), before.size() - 200);  // the letters folded into others
  const std::string db = db_name(scratch_.string());
  rerun_migration("search_folds_like_sqlite",
                  "UPDATE messages SET search = array_to_tsvector(ARRAY[" + words +
                      "]) WHERE id = " + std::to_string(id) + ";");
  // The vector's text: each word quoted, one space between them.
  const std::string text =
      pg_text(db, "SELECT search::text FROM messages WHERE id = " + std::to_string(id));
  std::set<std::string> got;
  for (std::size_t at = 0; at < text.size();) {
    ASSERT_EQ(text[at], '\'') << text.substr(at, 40);
    const std::size_t end = text.find('\'', at + 1);
    ASSERT_NE(end, std::string::npos);
    got.insert(text.substr(at + 1, end - at - 1));
    at = end + 2;
  }
  EXPECT_EQ(got, after);
}

// A send's clock is read before its write reaches the store, so a send queued behind
// another may carry the earlier time: each chat's created_at stamps still rise with its ids,
// a microsecond apart at least, on their own (one send after another) and in a batch, and
// never more than kMaxSendTimeLead past the send's own clock.
TEST_P(StoreContract, SendTimesRiseWithIdsInEachChat) {
  auto ann = make_user("ann");
  auto& chats = store_->chats();
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  auto create = [&](Micros at) {
    return make_chat(NewChat{ChatType::group, "g", {{ann.id, Role::owner}}, at});
  };
  const auto g = create(1000);
  const auto other = create(10);
  auto send = [&](std::int64_t chat, Micros clock, std::optional<std::string> key = {}) {
    return run(chats.send_message({chat, ann.id, "t", std::move(key), std::nullopt, clock},
                                  on_send))
        ->message;
  };
  EXPECT_EQ(send(g, 500).created_at, 1001);        // past the chat's own creation
  EXPECT_EQ(send(g, 2000).created_at, 2000);       // a later clock is taken as it is
  EXPECT_EQ(send(g, 1500, "k").created_at, 2001);  // read before the one stored first
  EXPECT_EQ(send(g, 1000).created_at, 2002);       // and again
  EXPECT_EQ(send(other, 100).created_at, 100);     // another chat's times are its own
  EXPECT_EQ(send(g, 9000, "k").created_at, 2001);  // a repeat answers the first send

  // At once, clocks rising and falling and behind the chat's newest message (PostgreSQL
  // takes them in batches): the same times as the rule gives one send after another, in
  // id order, however the sends were batched.
  const std::vector<Micros> clocks = {1990, 1995, 1980, 3050, 1985, 2000, 3200, 3201,
                                      3150, 2003, 50,   3400, 3399, 3398, 4000, 10};
  std::vector<NewMessage> sends;
  for (std::size_t i = 0; i < clocks.size(); ++i) {
    sends.push_back({i % 4 == 3 ? other : g, ann.id, "t", std::nullopt, std::nullopt, clocks[i]});
  }
  const auto results = send_at_once(std::move(sends));
  std::map<std::int64_t, std::vector<std::pair<std::int64_t, std::size_t>>> by_chat;  // id, i
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i] && results[i]->created) << i;
    by_chat[results[i]->message.chat_id].emplace_back(results[i]->message.id, i);
  }
  ASSERT_EQ(by_chat[g].size(), 12U);
  ASSERT_EQ(by_chat[other].size(), 4U);
  std::map<std::int64_t, Micros> newest = {{g, 2002}, {other, 100}};
  for (auto& [chat, sent] : by_chat) {
    std::sort(sent.begin(), sent.end());
    Micros previous = newest[chat];
    for (const auto& [id, i] : sent) {
      const Micros want = std::max(clocks[i], previous + 1);
      EXPECT_EQ(results[i]->message.created_at, want) << "chat " << chat << " send " << i;
      auto stored = run(chats.find_message(id));
      ASSERT_TRUE(stored);
      EXPECT_EQ(stored->created_at, want) << id;  // what the answer said is stored
      previous = want;
    }
    newest[chat] = previous;
  }
  // The next send, with a clock behind the batch, comes after it.
  EXPECT_EQ(send(g, 1).created_at, newest[g] + 1);

  // A chat stamped far ahead (a clock that ran fast, then stepped back): a send is stamped
  // no more than kMaxSendTimeLead past its clock, and the ones after it rise from there.
  const Micros fast = 10 * kMaxSendTimeLead;
  const auto h = create(fast);
  EXPECT_EQ(send(h, fast + 5).created_at, fast + 5);
  EXPECT_EQ(send(h, 100).created_at, 100 + kMaxSendTimeLead);
  EXPECT_EQ(send(h, 200).created_at, 100 + kMaxSendTimeLead + 1);
  EXPECT_EQ(send(h, 150 + kMaxSendTimeLead).created_at, 150 + kMaxSendTimeLead);
}

// Many sends at once, several with the same client_id: one message per client_id, ids in
// the order the events were committed, seqs handed to the listener gapless and in order.
TEST_P(StoreContract, ConcurrentSendsAreIdempotentAndLoggedInCommitOrder) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  HeardEvents log(chats);
  NewChat chat{ChatType::group, "g", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10};
  auto created = run(chats.create_chat(
      chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }));
  constexpr int kSends = 40;
  std::vector<NewMessage> sends;
  sends.reserve(kSends);
  for (int i = 0; i < kSends; ++i) {
    sends.push_back({created.chat_id, i % 2 == 0 ? ann.id : bob.id, "text " + std::to_string(i),
                     "cid-" + std::to_string(i % 10), std::nullopt, 100 + i});
  }
  const auto results = send_at_once(std::move(sends));
  std::set<std::int64_t> distinct;
  for (int i = 0; i < kSends; ++i) {
    ASSERT_TRUE(results[i]) << i;
    distinct.insert(results[i]->message.id);
    // The same sender and client_id always get the same message.
    EXPECT_EQ(results[i]->message.id, results[i % 10]->message.id) << i;
  }
  EXPECT_EQ(distinct.size(), 10U);  // one per (sender, client_id)
  // find_sent answers what a repeat gets: that sender's message in that chat only.
  auto found = run(chats.find_sent(created.chat_id, ann.id, "cid-2"));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, results[2]->message.id);
  EXPECT_EQ(found->client_id, "cid-2");
  EXPECT_EQ(found->sender_username, "ann");
  EXPECT_FALSE(run(chats.find_sent(created.chat_id, bob.id, "cid-2")));  // ann's key
  EXPECT_FALSE(run(chats.find_sent(created.chat_id + 1, ann.id, "cid-2")));
  EXPECT_FALSE(run(chats.find_sent(created.chat_id, ann.id, "cid-99")));
  const auto heard = log.all();
  ASSERT_EQ(heard.size(), 11U);  // chat_created + one per stored message
  std::vector<std::int64_t> message_ids;
  for (std::size_t i = 1; i < heard.size(); ++i) {
    EXPECT_GT(heard[i].seq, heard[i - 1].seq);
    message_ids.push_back(std::stoll(heard[i].payload.substr(6)));
  }
  EXPECT_TRUE(std::is_sorted(message_ids.begin(), message_ids.end()));
  auto replay = run(chats.replay(bob.id, 0, 100));
  EXPECT_EQ(replay.events.size(), 11U);
  EXPECT_EQ(run(chats.newest_seq()), heard.back().seq);
}

// A replay over many chats, paged small: every event of the reader's chats once, in seq
// order, whichever chat each page's events come from (a page is picked by seq across the
// chats before any event is read).
TEST_P(StoreContract, ReplayPagesAcrossManyChatsInSeqOrder) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  const auto start = run(chats.newest_seq());
  std::vector<std::int64_t> chat_ids;
  for (int i = 0; i < 6; ++i) {
    chat_ids.push_back(
        make_chat({ChatType::group, "g", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10}));
  }
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  for (int round = 0; round < 7; ++round) {
    for (std::size_t i = 0; i < chat_ids.size(); ++i) {
      if ((round + i) % 3 == 0) continue;  // uneven: some chats skip some rounds
      const std::string text = numbered("r", round);
      ASSERT_TRUE(
          run(chats.send_message({chat_ids[i], ann.id, text, {}, std::nullopt, 20}, on_send)));
    }
  }
  const auto all = run(chats.events_since(chat_ids, {}, start, 1000));
  for (const int limit : {1, 2, 5, 1000}) {
    std::vector<std::int64_t> seen;
    std::int64_t cursor = start;
    for (int pages = 0; pages < 200; ++pages) {
      auto page = run(chats.replay(bob.id, cursor, limit));
      ASSERT_FALSE(page.resync_required);
      ASSERT_LE(page.events.size(), static_cast<std::size_t>(limit));
      for (const auto& e : page.events) seen.push_back(e.seq);
      cursor = page.last_seq;
      if (!page.has_more) break;
    }
    std::vector<std::int64_t> want;
    for (const auto& e : all) want.push_back(e.seq);
    EXPECT_EQ(seen, want) << "limit " << limit;
  }
}

// Sends to several chats at once, one of them by a non-member and one to a chat that is
// gone: each send gets its own answer (its text, chat and sender), each chat holds just
// its messages, and each chat's last message and each sender's watermarks end at the
// newest. (Sends in flight together have no order among them.)
TEST_P(StoreContract, SendsAtOnceEachGetTheirOwnAnswer) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto cat = make_user("cat");
  auto dan = make_user("dan");
  auto& chats = store_->chats();
  auto make = [&](ChatType type, std::vector<std::pair<std::int64_t, Role>> members) {
    NewChat chat{type, "", std::move(members), 10};
    return run(chats.create_chat(
                   chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }))
        .chat_id;
  };
  const auto ab = make(ChatType::private_chat, {{ann.id, Role::member}, {bob.id, Role::member}});
  const auto bc = make(ChatType::private_chat, {{bob.id, Role::member}, {cat.id, Role::member}});
  const auto group = make(ChatType::group, {{ann.id, Role::owner}, {cat.id, Role::member}});
  const auto gone = make(ChatType::group, {{ann.id, Role::owner}});
  EventsFor<std::vector<MemberRecord>> no_events = [](const auto&) {
    return std::vector<NewEvent>{};
  };
  ASSERT_TRUE(run(chats.delete_chat(member_of_chat(gone, ann.id), no_events)));

  constexpr int kSends = 30;
  constexpr int kNotMember = 10;
  constexpr int kToGone = 17;
  constexpr int kNoClientId = 5;
  std::vector<NewMessage> sends;
  sends.reserve(kSends);
  for (int i = 0; i < kSends; ++i) {
    const std::int64_t chat = i % 3 == 0 ? ab : i % 3 == 1 ? bc : group;
    std::int64_t sender = chat == ab ? ann.id : chat == bc ? bob.id : (i % 2 ? ann.id : cat.id);
    if (i == kNotMember) sender = dan.id;
    // Quotes, backslashes, commas and braces in text and client_id, and a send without a
    // client_id: the batch travels as array literals.
    std::optional<std::string> client_id = R"(c"\{,})" + std::to_string(i);
    if (i == kNoClientId) client_id.reset();
    sends.push_back({i == kToGone ? gone : chat, sender, R"(text "q" \ {a,b} )" + std::to_string(i),
                     std::move(client_id), std::nullopt, 100 + i});
  }
  const auto expected = sends;
  const auto results = send_at_once(std::move(sends));

  std::map<std::int64_t, std::vector<std::int64_t>> ids_of_chat;
  std::map<std::int64_t, Micros> created_at_of;
  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> newest_of_sender;
  for (int i = 0; i < kSends; ++i) {
    if (i == kNotMember || i == kToGone) {
      EXPECT_FALSE(results[i]) << i;
      continue;
    }
    ASSERT_TRUE(results[i]) << i;
    const auto& m = results[i]->message;
    EXPECT_TRUE(results[i]->created) << i;
    EXPECT_EQ(m.text, expected[i].text);
    EXPECT_EQ(m.chat_id, expected[i].chat_id) << i;
    EXPECT_EQ(m.sender_id, expected[i].sender_id) << i;
    EXPECT_EQ(m.client_id, expected[i].client_id) << i;
    // Sends in flight have no order: one stored after another of its chat with a later
    // clock is stamped past it (SendTimesRiseWithIdsInEachChat).
    EXPECT_GE(m.created_at, expected[i].now) << i;
    EXPECT_LT(m.created_at, 100 + 2 * kSends) << i;  // past the newest clock by the sends
    ids_of_chat[m.chat_id].push_back(m.id);
    created_at_of[m.id] = m.created_at;
    auto& newest = newest_of_sender[{m.chat_id, m.sender_id}];
    newest = std::max(newest, m.id);
  }
  for (auto& [chat, ids] : ids_of_chat) {
    std::sort(ids.begin(), ids.end());
    for (std::size_t k = 1; k < ids.size(); ++k) {
      EXPECT_GT(created_at_of[ids[k]], created_at_of[ids[k - 1]]) << chat << " " << ids[k];
    }
    const std::int64_t viewer = chat == ab ? ann.id : cat.id;
    const auto seen = run(chats.history(chat, viewer, std::nullopt, std::nullopt, 50));
    ASSERT_TRUE(seen) << chat;
    std::vector<std::int64_t> stored;
    for (const auto& m : seen->messages) stored.push_back(m.id);
    std::reverse(stored.begin(), stored.end());  // newest first
    EXPECT_EQ(stored, ids) << chat;
    EXPECT_EQ(run(chats.find_chat(chat))->last_message_id, ids.back());
  }
  for (const auto& [key, newest] : newest_of_sender) {
    const auto member = run(chats.find_member(key.first, key.second));
    ASSERT_TRUE(member);
    EXPECT_EQ(member->last_read_message_id, newest);
    EXPECT_EQ(member->last_delivered_message_id, newest);
  }
  EXPECT_FALSE(run(chats.find_member(ab, dan.id)));
  // read_moved, replayed in commit (id) order: a send reads the chat's newest message when
  // that was above its sender's watermark (ann and cat take turns in the group, so most of
  // theirs do; the private chats have one sender each, so none there does).
  std::map<std::int64_t, std::pair<std::int64_t, bool>> by_id;  // id -> (index, read_moved)
  for (int i = 0; i < kSends; ++i) {
    if (results[i]) by_id[results[i]->message.id] = {i, results[i]->read_moved};
  }
  std::map<std::int64_t, std::int64_t> last_of_chat;
  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> watermark;
  int moved = 0;
  for (const auto& [id, entry] : by_id) {
    const auto& m = results[entry.first]->message;
    auto& mine = watermark[{m.chat_id, m.sender_id}];
    const bool expect_moved = mine < last_of_chat[m.chat_id];
    EXPECT_EQ(entry.second, expect_moved) << "send " << entry.first;
    moved += expect_moved ? 1 : 0;
    mine = id;
    last_of_chat[m.chat_id] = id;
  }
  EXPECT_GT(moved, 0);
}

TEST_P(StoreContract, EventsSinceCoversChatsAndUsers) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto cat = make_user("cat");
  auto& chats = store_->chats();
  auto make = [&](std::int64_t a, std::int64_t b) {
    NewChat chat{ChatType::private_chat, "", {{a, Role::member}, {b, Role::member}}, 10};
    return run(chats.create_chat(
        chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }));
  };
  const auto start = run(chats.newest_seq());
  auto ab = make(ann.id, bob.id);
  auto bc = make(bob.id, cat.id);
  auto by_chat = run(chats.events_since({ab.chat_id}, {}, start, 10));
  ASSERT_EQ(by_chat.size(), 1U);
  EXPECT_EQ(by_chat[0].chat_id, ab.chat_id);
  auto by_user = run(chats.events_since({}, {cat.id}, start, 10));  // cat's chats
  ASSERT_EQ(by_user.size(), 1U);
  EXPECT_EQ(by_user[0].chat_id, bc.chat_id);
  EXPECT_EQ(run(chats.events_since({ab.chat_id}, {cat.id}, start, 10)).size(), 2U);
  EXPECT_TRUE(run(chats.events_since({ab.chat_id, bc.chat_id}, {}, by_user[0].seq, 10)).empty());
}

// The log replays no words a message no longer has: editing a message rewrites the text of
// its message event and drops its earlier edit events (the new one supersedes them, so an
// edit costs the same however many came before), deleting it empties the message event
// and drops the edits, and nothing else changes (other members, other messages, the
// events' order and the seqs that stay).
TEST_P(StoreContract, EditsAndDeletionsRewriteTheTextTheLogHolds) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  const auto id =
      make_chat({ChatType::private_chat, "", {{ann.id, Role::member}, {bob.id, Role::member}}, 10});
  const auto start = run(chats.newest_seq());
  auto on_send = [](const SentMessage& s) {
    return std::vector<NewEvent>{chats::to_event(s.message.chat_id, s.message)};
  };
  auto send = [&](const std::string& text, const char* client_id) {
    auto sent = run(chats.send_message({id, ann.id, text, client_id, std::nullopt, 20}, on_send));
    EXPECT_TRUE(sent && sent->created);
    return sent->message.id;
  };
  const auto secret = send("the password is \"hunter2\" ✓", "c1");
  const auto kept = send("kept as it is", "c2");
  EventsFor<MessageRecord> on_edit = [](const MessageRecord& m) {
    return std::vector<NewEvent>{chats::to_edit_event(m)};
  };
  ASSERT_TRUE(run(chats.edit_message(member_of_chat(id, ann.id), secret,
                                     "the password is \"hunter2\" ...", 25, on_edit)));
  ASSERT_TRUE(run(
      chats.edit_message(member_of_chat(id, ann.id), secret, "the password is ***", 30, on_edit)));

  // What the log holds, oldest first: each event's type, message id and text.
  struct Logged {
    std::int64_t seq;
    std::string type;
    std::int64_t message_id;
    std::string text;
    std::string client_id;
  };
  auto logged = [&] {
    std::vector<Logged> out;
    for (const auto& e : run(chats.events_since({id}, {}, start, 100))) {
      auto o = boost::json::parse(e.payload).as_object();
      const auto* cid = o.if_contains("client_id");
      out.push_back({e.seq, e.type, o.at("message_id").as_int64(),
                     std::string(o.at("text").as_string()),
                     cid != nullptr && cid->is_string() ? std::string(cid->as_string()) : ""});
    }
    return out;
  };
  auto edited = logged();
  ASSERT_EQ(edited.size(), 3U);
  EXPECT_EQ(edited[0].type, "message");
  EXPECT_EQ(edited[0].message_id, secret);
  EXPECT_EQ(edited[0].text, "the password is ***");
  EXPECT_EQ(edited[0].client_id, "c1");  // the other members are untouched
  EXPECT_EQ(edited[1].message_id, kept);
  EXPECT_EQ(edited[1].text, "kept as it is");
  EXPECT_EQ(edited[2].type, "edit");  // the second edit only
  EXPECT_EQ(edited[2].text, "the password is ***");
  EXPECT_GT(edited[2].seq, edited[1].seq + 1);  // the first edit's seq is gone
  for (const auto& e : run(chats.events_since({id}, {}, start, 100))) {
    EXPECT_EQ(e.payload.find("hunter2"), std::string::npos) << e.payload;
  }

  EventsFor<MessageRecord> on_delete = [](const MessageRecord& m) {
    return std::vector<NewEvent>{chats::to_event(m.chat_id, chats::delete_event(m, false))};
  };
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, secret, on_delete, no_unpins)));
  auto deleted = run(chats.events_since({id}, {}, start, 100));
  ASSERT_EQ(deleted.size(), 3U);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(deleted[i].seq, edited[i].seq);
  EXPECT_EQ(deleted[2].type, "delete");
  for (const auto& e : deleted) {
    auto o = boost::json::parse(e.payload).as_object();
    if (o.at("message_id").as_int64() != secret) continue;
    const auto* text = o.if_contains("text");
    EXPECT_TRUE(text == nullptr || text->as_string().empty()) << e.payload;
    EXPECT_EQ(e.payload.find("hunter2"), std::string::npos) << e.payload;
  }
  EXPECT_NE(deleted[1].payload.find("kept as it is"), std::string::npos);
}

// Chat events carry copies of messages (a rename's newest message and what its hiders see
// instead, an added member's last message): they go out live with their text, the log
// keeps them without it, and a read of the log for delivery puts back each text as its
// message has it then. An edit or deletion thus leaves no words in the log, with nothing
// to rewrite.
TEST_P(StoreContract, ChatEventsLogCopiesOfMessagesWithoutTheirText) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto cat = make_user("cat");
  auto dan = make_user("dan");
  auto& chats = store_->chats();
  HeardEvents heard(chats);
  const auto id =
      make_chat({ChatType::group,
                 "g",
                 {{ann.id, Role::owner}, {bob.id, Role::member}, {cat.id, Role::member}},
                 10});
  const auto start = run(chats.newest_seq());
  auto on_send = [](const SentMessage& s) {
    return std::vector<NewEvent>{chats::to_event(s.message.chat_id, s.message)};
  };
  auto send = [&](std::int64_t sender, const std::string& text, Micros at) {
    auto sent =
        run(chats.send_message({id, sender, text, std::nullopt, std::nullopt, at}, on_send));
    EXPECT_TRUE(sent && sent->created);
    return sent->message;
  };
  auto rename = [&](const char* name) {
    ASSERT_TRUE(run(chats.rename_chat(member_of_chat(id, ann.id), name, [](const RenamedChat& r) {
      return std::vector<NewEvent>{chats::chat_update_event(r)};
    })));
  };
  send(ann.id, "older words", 20);
  const auto secret = send(ann.id, "the code is \"hunter2\" ✓", 21);
  rename("g2");  // its newest message: the secret
  ASSERT_TRUE(run(chats.add_member(
      member_of_chat(id, ann.id), dan.id, Role::member, 22, [](const MemberChange& c) {
        return std::vector<NewEvent>{
            chats::chat_event("chat_created", c.chat_id, &*c.seen_by_member, c.user_id, c.user_id)};
      })));
  const auto later = send(bob.id, "later words", 23);
  EventsFor<MessageRecord> none = [](const MessageRecord&) { return std::vector<NewEvent>{}; };
  ASSERT_TRUE(run(chats.hide_message(cat.id, later, none)));
  rename("g3");  // cat, who hid the newest, sees the secret instead

  auto chat_events = [start](const std::vector<EventRecord>& events) {
    std::vector<EventRecord> out;
    for (const auto& e : events) {
      if (e.seq > start && (e.type == "chat_created" || e.type == "chat_updated")) out.push_back(e);
    }
    return out;
  };
  auto parsed = [](const EventRecord& e) { return boost::json::parse(e.payload).as_object(); };
  auto text_at = [](const boost::json::value& holder) {
    return std::string(holder.as_object().at("last_message").as_object().at("text").as_string());
  };
  // Live: as committed, with their texts.
  const auto live = chat_events(heard.all());
  ASSERT_EQ(live.size(), 3U);  // g2, dan's, g3
  for (const auto& e : live) EXPECT_NE(e.payload.find("hunter2"), std::string::npos) << e.payload;
  // The log: no text in any copy (read raw, as replays read it).
  std::vector<EventRecord> logged;
  for (const auto reader : {ann.id, cat.id, dan.id}) {
    for (auto& e : chat_events(run(chats.replay(reader, start, 100)).events)) logged.push_back(e);
  }
  // ann's and cat's two renames; dan's addition and the rename after it.
  ASSERT_EQ(logged.size(), 6U);
  for (const auto& e : logged) {
    EXPECT_EQ(e.payload.find("hunter2"), std::string::npos) << e.payload;
    EXPECT_EQ(e.payload.find("later words"), std::string::npos) << e.payload;
  }
  // Read for delivery: the texts are back, and the events are what went out live.
  auto delivered = [&] { return chat_events(run(chats.events_since({id}, {dan.id}, start, 100))); };
  const auto before = delivered();
  ASSERT_EQ(before.size(), 3U);
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(before[i].seq, live[i].seq);
    EXPECT_EQ(parsed(before[i]), parsed(live[i]));
  }

  EventsFor<MessageRecord> on_edit = [](const MessageRecord& m) {
    return std::vector<NewEvent>{chats::to_edit_event(m)};
  };
  ASSERT_TRUE(run(
      chats.edit_message(member_of_chat(id, ann.id), secret.id, "the code is ***", 30, on_edit)));
  const auto edited = delivered();
  ASSERT_EQ(edited.size(), 3U);
  EXPECT_EQ(text_at(parsed(edited[0])), "the code is ***");
  // The copy follows the edit as the message's own JSON does.
  const auto first = parsed(edited[0]);
  const auto& copy = first.at("last_message").as_object();
  EXPECT_TRUE(copy.at("is_edited").as_bool());
  EXPECT_FALSE(copy.at("edited_at").is_null());
  EXPECT_FALSE(copy.at("is_deleted").as_bool());
  EXPECT_EQ(text_at(parsed(edited[1]).at("chat")), "the code is ***");
  const auto g3 = parsed(edited[2]);
  EXPECT_EQ(text_at(g3), "later words");
  ASSERT_EQ(g3.at("seen_by_hiders").as_array().size(), 1U);
  EXPECT_EQ(text_at(g3.at("seen_by_hiders").as_array()[0]), "the code is ***");
  for (const auto& e : run(chats.events_since({id}, {dan.id}, start, 100))) {
    EXPECT_EQ(e.payload.find("hunter2"), std::string::npos) << e.payload;
  }

  EventsFor<MessageRecord> on_delete = [](const MessageRecord& m) {
    return std::vector<NewEvent>{chats::to_event(m.chat_id, chats::delete_event(m, false))};
  };
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, secret.id, on_delete, no_unpins)));
  for (const auto& e : run(chats.events_since({id}, {dan.id}, start, 100))) {
    EXPECT_EQ(e.payload.find("the code is"), std::string::npos) << e.payload;
  }
  const auto gone = parsed(delivered()[0]);
  EXPECT_EQ(text_at(gone), "");
  EXPECT_TRUE(gone.at("last_message").as_object().at("is_deleted").as_bool());
}

// PostgreSQL only: a COMMIT whose answer never comes may have committed events that no node
// heard. The store names a seq at or below the first one it could have taken, so that
// every node reads the log from there, and never one past it (that event would be lost).
TEST_P(StoreContract, UnansweredCommitNamesItsFirstPossibleSeq) {
  if (GetParam().name != "postgres") GTEST_SKIP() << "SQLite commits in-process";
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  std::vector<std::int64_t> uncertain;
  chats.set_uncertain_commit_listener([&](std::int64_t seq) { uncertain.push_back(seq); });
  NewChat chat{ChatType::private_chat, "", {{ann.id, Role::member}, {bob.id, Role::member}}, 10};
  auto created = run(chats.create_chat(
      chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }));
  const std::int64_t newest = run(chats.newest_seq());
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  const std::string conninfo =
      "host=127.0.0.1 port=" + std::string(std::getenv("CHATD_TEST_PG_PORT")) +
      " dbname=" + db_name(scratch_.string()) + " user=chat password=chat";
  // The event-log lock (the store's key) held here keeps the send's COMMIT waiting; its
  // connection is then cut, so the store never learns whether it committed.
  bool failed = false;
  auto task = [&]() -> boost::asio::awaitable<void> {
    auto ex = co_await boost::asio::this_coro::executor;
    auto holder = co_await postgres::PgConnection::connect(ex, conninfo);
    co_await holder->query("SELECT pg_advisory_lock(7316002)");
    auto send = [&]() -> boost::asio::awaitable<void> {
      try {
        NewMessage m{created.chat_id, ann.id, "lost?", std::nullopt, std::nullopt, 100};
        co_await chats.send_message(std::move(m), on_send);
      } catch (const Unavailable&) {
        failed = true;
      }
    };
    boost::asio::co_spawn(ex, send(), boost::asio::detached);
    boost::asio::steady_timer t(ex);
    // Up to 30 s each (5 s before): the test failed once with both cores busy, and these
    // two waits are the only timing in it.
    for (int i = 0; i < 3000; ++i) {
      t.expires_after(std::chrono::milliseconds(10));
      co_await t.async_wait(boost::asio::use_awaitable);
      auto cut = co_await holder->query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
          "current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'");
      if (cut.rows() > 0) break;
    }
    for (int i = 0; i < 3000 && !failed; ++i) {
      t.expires_after(std::chrono::milliseconds(10));
      co_await t.async_wait(boost::asio::use_awaitable);
    }
    co_await holder->query("SELECT pg_advisory_unlock(7316002)");
  };
  run(task());
  ASSERT_TRUE(failed);
  ASSERT_EQ(uncertain.size(), 1U);
  EXPECT_EQ(uncertain[0], newest + 1);
  // It did not commit; the next send takes exactly the seq that was named.
  EXPECT_EQ(run(chats.newest_seq()), newest);
  std::vector<EventRecord> heard;
  chats.set_commit_listener([&](const std::vector<EventRecord>& events) {
    heard.insert(heard.end(), events.begin(), events.end());
  });
  auto sent = run(chats.send_message(
      {created.chat_id, ann.id, "kept", std::nullopt, std::nullopt, 200}, on_send));
  ASSERT_TRUE(sent);
  ASSERT_EQ(heard.size(), 1U);
  EXPECT_EQ(heard[0].seq, uncertain[0]);
}

// What staff read: every chat with its sizes, any chat's messages with the deleted ones,
// and site-wide counts.
TEST_P(StoreContract, AdminReadsSeeEveryChatAndMessage) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  auto& admin = store_->admin();
  auto make_chat = [&](const char* name, std::vector<std::pair<std::int64_t, Role>> members) {
    NewChat chat{ChatType::group, name, std::move(members), 10};
    return run(chats.create_chat(
                   chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }))
        .chat_id;
  };
  const auto team = make_chat("Команда Alpha", {{ann.id, Role::owner}, {bob.id, Role::member}});
  const auto solo = make_chat("solo", {{bob.id, Role::owner}});
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  std::vector<std::int64_t> ids;
  for (const char* text : {"первое слово", "second word", "third one"}) {
    auto sent = run(chats.send_message(
        {team, ann.id, text, std::nullopt, std::nullopt, now_micros()}, on_send));
    ids.push_back(sent->message.id);
  }
  auto solo_msg = run(chats.send_message(
      {solo, bob.id, "alone", std::nullopt, std::nullopt, now_micros()}, on_send));
  EventsFor<MessageRecord> none = [](const auto&) { return std::vector<NewEvent>{}; };
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[1], none, no_unpins)));

  auto all = run(admin.chats("", 10, 0));
  EXPECT_EQ(all.count, 2);
  ASSERT_EQ(all.chats.size(), 2U);
  EXPECT_EQ(all.chats[0].chat.id, solo);  // newest first
  EXPECT_EQ(all.chats[1].member_count, 2);
  EXPECT_EQ(all.chats[1].message_count, 3);  // the deleted one counts
  // Case folded in every script: the caller passes the search lower-cased.
  auto found = run(admin.chats("команда", 10, 0));
  ASSERT_EQ(found.chats.size(), 1U);
  EXPECT_EQ(found.chats[0].chat.id, team);
  EXPECT_EQ(run(admin.chats("alpha", 10, 0)).count, 1);
  EXPECT_EQ(run(admin.chats("beta", 10, 0)).count, 0);
  EXPECT_EQ(run(admin.chats("", 1, 1)).chats.at(0).chat.id, team);
  EXPECT_EQ(run(admin.chat(solo))->message_count, 1);
  EXPECT_FALSE(run(admin.chat(solo + 100)));

  MessageFilter in_team;
  in_team.chat_id = team;
  in_team.limit = 2;
  auto page = run(admin.messages(in_team));
  ASSERT_EQ(page.messages.size(), 2U);
  EXPECT_TRUE(page.has_more);
  EXPECT_EQ(page.messages[0].id, ids[2]);
  EXPECT_TRUE(page.messages[1].is_deleted);  // shown to staff, marked
  in_team.before = page.messages[1].id;
  auto older = run(admin.messages(in_team));
  ASSERT_EQ(older.messages.size(), 1U);
  EXPECT_FALSE(older.has_more);
  EXPECT_EQ(older.messages[0].id, ids[0]);
  MessageFilter everywhere;
  EXPECT_EQ(run(admin.messages(everywhere)).messages.at(0).id, solo_msg->message.id);
  everywhere.terms = {"слов"};
  auto hits = run(admin.messages(everywhere));
  ASSERT_EQ(hits.messages.size(), 1U);  // the deleted "second word" lost its text
  EXPECT_EQ(hits.messages[0].id, ids[0]);

  auto counts = run(admin.counts(now_micros() - 60'000'000));
  EXPECT_EQ(counts.users, 2);
  EXPECT_EQ(counts.chats, 2);
  EXPECT_EQ(counts.messages, 4);
  EXPECT_EQ(counts.messages_since, 4);
  EXPECT_EQ(run(admin.counts(now_micros() + 60'000'000)).messages_since, 0);
}

// A deleted chat is gone from every read at once, and leaves none of its rows (SQLite
// removes them in slices after the deletion's own transaction, before delete_chat returns).
TEST_P(StoreContract, ADeletedChatIsGoneFromEveryReadAndLeavesNoRows) {
  const auto [ann, bob, team, kept] = team_and_kept();
  auto& chats = store_->chats();
  auto& admin = store_->admin();
  const auto ids = send_numbered(team, ann.id, 3, true);
  send_numbered(kept, ann.id, 1, false);
  EventsFor<MessageRecord> none = [](const auto&) { return std::vector<NewEvent>{}; };
  EventsFor<PinRecord> no_pin_events = [](const auto&) { return std::vector<NewEvent>{}; };
  const auto hidden = run(chats.find_message(ids[0]));
  ASSERT_TRUE(hidden);
  ASSERT_TRUE(run(chats.hide_message(bob.id, *hidden, none)));
  ASSERT_TRUE(run(chats.pin(Standing{team, ann.id, Role::owner}, ids[1], 30, no_pin_events)));
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[2], none, no_unpins)));

  EventsFor<std::vector<MemberRecord>> no_events = [](const auto&) {
    return std::vector<NewEvent>{};
  };
  ASSERT_TRUE(run(chats.delete_chat(Standing{team, ann.id, Role::owner}, no_events)));
  EXPECT_EQ(run(admin.chats("", 10, 0)).count, 1);
  EXPECT_FALSE(run(admin.chat(team)));
  MessageFilter in_team;
  in_team.chat_id = team;
  EXPECT_TRUE(run(admin.messages(in_team)).messages.empty());
  const auto counts = run(admin.counts(0));
  EXPECT_EQ(counts.chats, 1);
  EXPECT_EQ(counts.messages, 1);
  EXPECT_EQ(counts.messages_since, 1);
  EXPECT_TRUE(run(chats.search(ann.id, {"m"}, std::nullopt, 10)).size() == 1);
  for (const auto id : ids) EXPECT_FALSE(run(chats.find_message(id))) << id;
  EXPECT_EQ(run(chats.finish_chat_deletions()), 0);
  // A hide that raced the deletion (its message read before) stores and logs nothing.
  int logged = 0;
  EventsFor<MessageRecord> count_hide = [&logged](const MessageRecord& m) {
    ++logged;
    return std::vector<NewEvent>{NewEvent{m.chat_id, std::nullopt, "delete", "{}"}};
  };
  EXPECT_FALSE(run(chats.hide_message(ann.id, *hidden, count_hide)));
  EXPECT_EQ(logged, 0);
}

// SQLite: a chat whose rows a stop left half removed (retired: no members, no pins, marked
// `purging`) is already gone from staff's reads, and finish_chat_deletions() removes the
// rest, slice by slice, leaving the search index consistent.
TEST_P(StoreContract, AChatDeletionCutShortIsFinishedLater) {
  if (GetParam().name != "sqlite") {
    GTEST_SKIP() << "PostgreSQL removes a chat's rows in its deletion's transaction";
  }
  const auto [ann, bob, team, kept] = team_and_kept();
  auto& chats = store_->chats();
  auto& admin = store_->admin();
  const auto ids = send_numbered(team, ann.id, 1100, false);  // more than two slices
  send_numbered(kept, ann.id, 1, false);
  EventsFor<MessageRecord> none = [](const auto&) { return std::vector<NewEvent>{}; };
  const auto hidden = run(chats.find_message(ids[5]));
  ASSERT_TRUE(hidden);
  ASSERT_TRUE(run(chats.hide_message(bob.id, *hidden, none)));
  ASSERT_TRUE(run(chats.delete_message(std::nullopt, ids[7], none, no_unpins)));

  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((scratch_ / "db.sqlite3").string().c_str(), &raw), SQLITE_OK);
  sqlite3_busy_timeout(raw, 10'000);
  auto count = [&](const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(raw, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
    std::int64_t n = -1;
    if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
  };
  const std::string chat = std::to_string(team);
  const std::string retire =
      "DELETE FROM chat_members WHERE chat_id = " + chat +
      "; UPDATE chats SET purging = 1, private_key = NULL WHERE id = " + chat;
  ASSERT_EQ(sqlite3_exec(raw, retire.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);

  // Reads that do not go through members: the chat, its messages (a staff deletion, a
  // forward's original), and staff's lists and counts.
  EXPECT_FALSE(run(chats.find_chat(team)));
  EXPECT_FALSE(run(chats.find_message(ids[0])));
  EXPECT_FALSE(run(chats.delete_message(std::nullopt, ids[1], none, no_unpins)));
  EventsFor<SentMessage> no_send_events = [](const auto&) { return std::vector<NewEvent>{}; };
  const auto forward =
      run(chats.send_message({kept, ann.id, "", std::nullopt, ids[2], 50, ids[2]}, no_send_events));
  ASSERT_TRUE(forward);
  EXPECT_TRUE(forward->original_gone);
  EXPECT_EQ(run(admin.chats("", 10, 0)).count, 1);
  EXPECT_FALSE(run(admin.chat(team)));
  MessageFilter everywhere;
  const auto page = run(admin.messages(everywhere));
  ASSERT_EQ(page.messages.size(), 1U);
  EXPECT_EQ(page.messages[0].chat_id, kept);
  const auto counts = run(admin.counts(0));
  EXPECT_EQ(counts.chats, 1);
  EXPECT_EQ(counts.messages, 1);
  EXPECT_EQ(counts.messages_since, 1);

  EXPECT_EQ(run(chats.finish_chat_deletions()), 1);
  for (const char* table : {"messages", "hidden_messages", "chats"}) {
    const std::string column = std::string(table) == "chats" ? "id" : "chat_id";
    EXPECT_EQ(
        count("SELECT count(*) FROM " + std::string(table) + " WHERE " + column + " = " + chat), 0)
        << table;
  }
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE user_id IS NULL AND chat_id = " + chat), 0);
  EXPECT_EQ(count("SELECT count(*) FROM messages"), 1);
  // rank 1: the index is checked against its content (the messages left), not only itself.
  EXPECT_EQ(sqlite3_exec(
                raw, "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)",
                nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(raw);
  EXPECT_EQ(run(chats.finish_chat_deletions()), 0);
  sqlite3_close(raw);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::ValuesIn(backends()),
                         [](const auto& info) { return info.param.name; });
