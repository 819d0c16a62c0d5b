// The Store contract, run against every backend the build has (SQLite now; the PostgreSQL
// store joins the same suite). Each test gets a fresh database.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "config/settings.hpp"
#include "store/sqlite/sqlite_store.hpp"

using namespace chat;
using namespace chat::store;

namespace {

template <class T>
T run(boost::asio::awaitable<T> a) {
  boost::asio::io_context io;
  auto f = boost::asio::co_spawn(io, std::move(a), boost::asio::use_future);
  io.run();
  return f.get();
}

struct Backend {
  std::string name;
  std::function<std::unique_ptr<Store>(const std::string& scratch)> open;
};

void PrintTo(const Backend& b, std::ostream* os) {
  *os << b.name;
}

std::vector<Backend> backends() {
  return {{"sqlite", [](const std::string& scratch) {
             config::DatabaseSettings s;
             s.sqlite_path = scratch + "/db.sqlite3";
             s.read_connections = 2;
             return sqlite::open_store(s);
           }}};
}

class StoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    scratch_ = std::filesystem::temp_directory_path() /
               ("chatd-store-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(scratch_);
    store_ = GetParam().open(scratch_.string());
    store_->migrate();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(scratch_);
  }

  UserRecord make_user(const std::string& name) {
    NewUser u{name, name, name + "@example.com", "hash", false, false, 1'000};
    auto created = run(store_->users().create(u));
    EXPECT_TRUE(created);
    return *created;
  }

  static inline int counter_ = 0;
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
  EXPECT_EQ(updated->email, "new@example.com");
  EXPECT_EQ(updated->password_hash, "hash");
  UserChanges deactivate;
  deactivate.is_active = false;
  EXPECT_FALSE(run(store_->users().update(ann.id, deactivate))->is_active);
  EXPECT_FALSE(run(store_->users().update(ann.id + 100, c)));
}

TEST_P(StoreContract, ListsActiveUsersByPrefixWithPaging) {
  for (const char* n : {"alice", "alex", "bob", "alfred"}) make_user(n);
  auto bob = run(store_->users().find_by_username_key("bob"));
  auto all = run(store_->users().list_active("", 10, 0));
  EXPECT_EQ(all.count, 4);
  ASSERT_EQ(all.users.size(), 4U);
  EXPECT_LT(all.users[0].id, all.users[1].id);
  auto al = run(store_->users().list_active("al", 2, 0));
  EXPECT_EQ(al.count, 3);
  ASSERT_EQ(al.users.size(), 2U);
  auto al2 = run(store_->users().list_active("al", 2, 2));
  ASSERT_EQ(al2.users.size(), 1U);
  EXPECT_EQ(al2.users[0].username, "alfred");
  UserChanges off;
  off.is_active = false;
  run(store_->users().update(bob->id, off));
  EXPECT_EQ(run(store_->users().list_active("", 10, 0)).count, 3);
}

TEST_P(StoreContract, RefreshTokensRevokeAndRotateOnce) {
  auto ann = make_user("ann");
  auto& tokens = store_->refresh_tokens();
  run(tokens.record({"t1", ann.id, 100, 200}));
  EXPECT_EQ(run(tokens.state("t1")), TokenState::active);
  EXPECT_EQ(run(tokens.state("nope")), TokenState::unknown);
  EXPECT_EQ(run(tokens.revoke("t1", 150)), TokenState::active);
  EXPECT_EQ(run(tokens.revoke("t1", 151)), TokenState::revoked);
  EXPECT_EQ(run(tokens.state("t1")), TokenState::revoked);

  run(tokens.record({"t2", ann.id, 100, 200}));
  EXPECT_TRUE(run(tokens.rotate("t2", {"t3", ann.id, 110, 210}, 5)));
  EXPECT_FALSE(run(tokens.rotate("t2", {"t4", ann.id, 110, 210}, 6)));  // reuse
  EXPECT_EQ(run(tokens.state("t3")), TokenState::active);
  EXPECT_EQ(run(tokens.state("t4")), TokenState::unknown);

  run(tokens.revoke_all_for_user(ann.id, 7));
  EXPECT_EQ(run(tokens.state("t3")), TokenState::revoked);
  EXPECT_EQ(run(tokens.prune_expired(205)), 2);  // t1 and t2 expired at 200
  EXPECT_EQ(run(tokens.state("t1")), TokenState::unknown);
  EXPECT_EQ(run(tokens.state("t3")), TokenState::revoked);
}

namespace {
std::vector<NewEvent> one_event(std::int64_t chat_id, const char* type) {
  return {NewEvent{chat_id, std::nullopt, type, std::string("{\"type\":\"") + type + "\"}"}};
}
}  // namespace

TEST_P(StoreContract, ChatsMessagesAndUnreadCounts) {
  auto ann = make_user("ann");
  auto bob = make_user("bob");
  auto& chats = store_->chats();
  NewChat chat{ChatType::group, "g", {{ann.id, Role::owner}, {bob.id, Role::member}}, 10};
  auto created = run(chats.create_chat(
      chat, [](const CreatedChat& c) { return one_event(c.chat_id, "chat_created"); }));
  ASSERT_TRUE(created.created);
  const auto id = created.chat_id;
  auto on_send = [](const SentMessage& s) { return one_event(s.message.chat_id, "message"); };
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    auto sent = run(chats.send_message(
        {id, ann.id, "m" + std::to_string(i), "c" + std::to_string(i), std::nullopt, 20 + i},
        on_send));
    ASSERT_TRUE(sent && sent->created);
    ids.push_back(sent->message.id);
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  auto retry = run(chats.send_message({id, ann.id, "other text", "c2", std::nullopt, 99}, on_send));
  ASSERT_TRUE(retry);
  EXPECT_FALSE(retry->created);
  EXPECT_EQ(retry->message.id, ids[2]);
  EXPECT_EQ(retry->message.text, "m2");
  EXPECT_EQ(run(chats.unread_count(id, bob.id)), 5);
  EXPECT_EQ(run(chats.unread_count(id, ann.id)), 0);  // one's own messages never count

  auto no_events = [](const auto&) { return std::vector<NewEvent>{}; };
  EventsFor<MessageRecord> none = no_events;
  ASSERT_TRUE(run(chats.delete_message(ids[4], none)));
  EXPECT_EQ(run(chats.unread_count(id, bob.id)), 4);
  auto m3 = run(chats.find_message(ids[3]));
  EXPECT_TRUE(run(chats.hide_message(bob.id, *m3, none)));
  EXPECT_EQ(run(chats.unread_count(id, bob.id)), 3);
  EXPECT_EQ(run(chats.unread_count(id, ann.id)), 0);
  EventsFor<WatermarkChange> none_w = no_events;
  auto read = run(chats.mark_read(id, bob.id, ids[1], none_w));
  EXPECT_TRUE(read.changed);
  EXPECT_EQ(run(chats.unread_count(id, bob.id)), 1);
  EXPECT_FALSE(run(chats.mark_read(id, bob.id, ids[0], none_w)).changed);  // never lowered
  auto page = run(chats.history(id, bob.id, std::nullopt, std::nullopt, 10));
  EXPECT_EQ(page.messages.size(), 4U);  // the hidden one is gone for bob
  auto found = run(chats.search(bob.id, {"m1"}, std::nullopt, 10));
  ASSERT_EQ(found.size(), 1U);
  EXPECT_EQ(found[0].id, ids[1]);
  EXPECT_TRUE(run(chats.search(bob.id, {"m4"}, std::nullopt, 10)).empty());  // deleted
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
  auto replay = run(chats.replay(bob.id, 0, 10));
  ASSERT_EQ(replay.events.size(), 1U);  // the second create wrote nothing
  EXPECT_EQ(replay.events[0].type, "chat_created");
  EXPECT_FALSE(replay.resync_required);
  EXPECT_EQ(run(chats.prune_events(now_micros() + 1'000'000)), 1);
  EXPECT_TRUE(run(chats.replay(bob.id, 0, 10)).resync_required);
  EXPECT_FALSE(run(chats.replay(bob.id, replay.last_seq, 10)).resync_required);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::ValuesIn(backends()),
                         [](const auto& info) { return info.param.name; });
