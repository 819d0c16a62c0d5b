// The hub's fan-out: every recipient gets the frames meant for it, in order, and a burst of
// events costs each socket one write.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/parse.hpp>

#include "chat/wire.hpp"
#include "realtime/broker.hpp"
#include "realtime/hub.hpp"

namespace {

using chat::realtime::Frame;
using chat::realtime::Hub;
using chat::realtime::Session;
using chat::realtime::UnreadState;
using chat::store::UnreadCount;

// A socket that records what it was given and how often it was written.
class FakeSession : public Session {
 public:
  FakeSession(std::int64_t user, std::int64_t chat) : user_(user), chat_(chat) {}
  void deliver(const Frame& frame, std::int64_t seq, std::int64_t state) override {
    if (queue(frame, seq, state)) flush();
  }
  bool queue(const Frame& frame, std::int64_t /*seq*/, std::int64_t state) override {
    // As a socket does: a state frame not yet written gives way to a newer one.
    if (state != 0) {
      std::erase_if(queued, [&](const std::string& f) {
        return f.find(R"("type":"unread")") != std::string::npos &&
               f.find(",\"chat_id\":" + std::to_string(state) + ",") != std::string::npos;
      });
    }
    queued.push_back(*frame);
    const bool first = !due_;
    due_ = true;
    return first;
  }
  void flush() override {
    due_ = false;
    ++flushes;
    written.insert(written.end(), queued.begin(), queued.end());
    queued.clear();
  }
  void close(int code, const std::string& /*reason*/) override { closed_with = code; }
  [[nodiscard]] std::int64_t user_id() const override { return user_; }
  [[nodiscard]] std::int64_t chat_id() const override { return chat_; }
  [[nodiscard]] const std::string& login_session() const override { return session; }
  [[nodiscard]] std::int64_t socket_serial() const override { return serial; }

  std::vector<std::string> queued, written;
  std::string session;
  std::int64_t serial = 0;
  int flushes = 0;
  int closed_with = 0;

 private:
  std::int64_t user_, chat_;
  bool due_ = false;
};

chat::store::EventRecord message(std::int64_t seq, std::int64_t chat, std::int64_t id,
                                 std::int64_t sender) {
  chat::store::EventRecord e;
  e.seq = seq;
  e.chat_id = chat;
  e.type = "message";
  e.payload = R"({"type":"message","message_id":)" + std::to_string(id) + R"(,"chat_id":)" +
              std::to_string(chat) + R"(,"text":"hi","sender":"u","sender_id":)" +
              std::to_string(sender) + R"(,"client_id":null})";
  return e;
}

// `user` read chat `chat` up to `last_read`.
chat::store::EventRecord read_of(std::int64_t seq, std::int64_t chat, std::int64_t user,
                                 std::int64_t last_read) {
  chat::store::EventRecord e;
  e.seq = seq;
  e.chat_id = chat;
  e.type = "read";
  e.payload = R"({"type":"read","chat_id":)" + std::to_string(chat) + R"(,"user_id":)" +
              std::to_string(user) + R"(,"last_read_message_id":)" + std::to_string(last_read) +
              "}";
  return e;
}

bool is_unread(const std::string& frame) {
  return frame.starts_with(R"({"type":"unread")");
}

// The newest unread count written to a socket ("" for none).
std::string last_unread(const std::vector<std::string>& written) {
  auto it = std::find_if(written.rbegin(), written.rend(), is_unread);
  return it == written.rend() ? "" : *it;
}

struct Fixture {
  std::unique_ptr<chat::realtime::Broker> broker = chat::realtime::make_in_process_broker();
  std::vector<std::function<void()>> jobs;  // posted flush jobs, run by the test
  std::vector<std::pair<std::int64_t, std::vector<std::int64_t>>> delivered;
  // Recounts asked of the store, answered by the test.
  std::vector<std::pair<std::int64_t, std::function<bool(std::optional<UnreadCount>)>>> recounts;
  Hub hub{*broker,
          [this](std::int64_t chat, std::int64_t,
                 std::function<bool(std::optional<UnreadCount>)> done) {
            recounts.emplace_back(chat, std::move(done));
          },
          [this](std::int64_t, std::int64_t message, const std::vector<std::int64_t>& users) {
            delivered.emplace_back(message, users);
          },
          [this](std::function<void()> job) { jobs.push_back(std::move(job)); }, 16};

  void run_jobs() {
    while (!jobs.empty()) {
      auto now = std::exchange(jobs, {});
      for (auto& j : now) j();
    }
  }
};

}  // namespace

TEST(Hub, ABurstOfEventsIsOneWritePerSocket) {
  Fixture f;
  constexpr std::int64_t kChat = 7;
  std::vector<std::shared_ptr<FakeSession>> members;
  for (std::int64_t user = 1; user <= 600; ++user) {
    auto s = std::make_shared<FakeSession>(user, 0);
    std::unordered_map<std::int64_t, UnreadState> chats{{kChat, {}}};
    EXPECT_TRUE(f.hub.attach(s, chats, 0, nullptr).empty());
    members.push_back(s);
  }
  // Three messages committed before the flush job runs.
  for (std::int64_t i = 1; i <= 3; ++i) f.hub.on_logged(message(i, kChat, 100 + i, 1));
  for (const auto& s : members) EXPECT_EQ(s->flushes, 0);
  EXPECT_EQ(f.jobs.size(), 1U);  // one job for the whole burst
  f.run_jobs();
  for (const auto& s : members) {
    EXPECT_EQ(s->flushes, 1) << s->user_id();
    if (s->user_id() == 1) {
      ASSERT_EQ(s->written.size(), 3U);  // the sender: its messages, no unread count
    } else {
      // The messages in commit order, then the member's newest unread count (the counts
      // queued with the earlier messages gave way to it).
      ASSERT_EQ(s->written.size(), 4U);
      EXPECT_NE(s->written[0].find(R"("message_id":101)"), std::string::npos);
      EXPECT_NE(s->written[0].find(R"("seq":1)"), std::string::npos);
      EXPECT_NE(s->written[2].find(R"("message_id":103)"), std::string::npos);
      EXPECT_EQ(s->written[3], R"({"type":"unread","chat_id":7,"unread_count":3})");
    }
  }
  // Delivered receipts: once per message, for everyone but the sender.
  ASSERT_EQ(f.delivered.size(), 3U);
  EXPECT_EQ(f.delivered[0].first, 101);
  EXPECT_EQ(f.delivered[0].second.size(), 599U);
}

TEST(Hub, DetachedSessionsHearNothingMore) {
  Fixture f;
  auto a = std::make_shared<FakeSession>(1, 0);
  auto b = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {}}, {6, {}}};
  f.hub.attach(a, chats, 0, nullptr);
  f.hub.attach(b, chats, 0, nullptr);
  EXPECT_EQ(f.hub.session_count(), 2U);
  f.hub.detach(a.get());
  EXPECT_EQ(f.hub.session_count(), 1U);
  f.hub.on_logged(message(1, 6, 10, 2));
  f.run_jobs();
  EXPECT_TRUE(a->written.empty());
  EXPECT_EQ(b->written.size(), 1U);
}

TEST(Hub, AnnouncedUnreadCountsComeFromTheStoreAndAlwaysGoOut) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  auto other = std::make_shared<FakeSession>(2, 0);  // the same user's other socket
  // Opened with 4 unread in chat 5 and none in chat 6; chat 9 is not one of its chats.
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {0, 4}}, {6, {10, 0}}};
  f.hub.attach(me, chats, 0, nullptr);
  f.hub.attach(other, chats, 0, nullptr);
  f.hub.announce_unread(me.get(), {5, 6, 9});
  ASSERT_EQ(f.recounts.size(), 2U);  // not for chat 9
  EXPECT_EQ(f.recounts[0].first, 5);
  EXPECT_EQ(f.recounts[1].first, 6);
  // The store says 6 (a message the hub's count missed) and 0 (unchanged: sent anyway).
  f.recounts[0].second(UnreadCount{6, 0});
  f.recounts[1].second(UnreadCount{0, 0});
  f.run_jobs();
  ASSERT_EQ(me->written.size(), 2U) << ::testing::PrintToString(me->written);
  EXPECT_EQ(me->written[0], R"({"type":"unread","chat_id":5,"unread_count":6})");
  EXPECT_EQ(me->written[1], R"({"type":"unread","chat_id":6,"unread_count":0})");
  EXPECT_TRUE(other->written.empty());
  // The count it keeps is the store's now: the next message from someone else makes it 7.
  f.hub.on_logged(message(1, 5, 11, 1));
  f.run_jobs();
  ASSERT_EQ(me->written.size(), 4U);
  EXPECT_EQ(me->written[3], R"({"type":"unread","chat_id":5,"unread_count":7})");
  // A recount answered, then a newer live count: queued in order under the hub's lock,
  // the newer one replaces the older.
  f.hub.announce_unread(me.get(), {5});
  ASSERT_EQ(f.recounts.size(), 3U);
  f.recounts[2].second(UnreadCount{7, 0});
  f.hub.on_logged(message(2, 5, 12, 1));
  f.run_jobs();
  ASSERT_EQ(me->written.size(), 6U) << ::testing::PrintToString(me->written);
  EXPECT_NE(me->written[4].find(R"("message_id":12)"), std::string::npos);
  EXPECT_EQ(me->written[5], R"({"type":"unread","chat_id":5,"unread_count":8})");
}

TEST(Hub, ARecountThatALiveCountOvertookIsAskedAgain) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {0, 3}}};
  f.hub.attach(me, chats, 0, nullptr);
  f.hub.announce_unread(me.get(), {5});
  ASSERT_EQ(f.recounts.size(), 1U);
  // A message commits after the store's read: the live count (4) goes out first...
  f.hub.on_logged(message(1, 5, 11, 1));
  f.run_jobs();
  ASSERT_EQ(me->written.back(), R"({"type":"unread","chat_id":5,"unread_count":4})");
  // ...and the store's answer (3, read before it) must not replace it: the store is asked
  // again.
  f.recounts[0].second(UnreadCount{3, 0});
  ASSERT_EQ(f.recounts.size(), 2U);
  f.run_jobs();
  EXPECT_EQ(me->written.back(), R"({"type":"unread","chat_id":5,"unread_count":4})");
  f.recounts[1].second(UnreadCount{4, 0});
  f.run_jobs();
  EXPECT_EQ(me->written.back(), R"({"type":"unread","chat_id":5,"unread_count":4})");
  EXPECT_EQ(me->written.size(), 3U) << ::testing::PrintToString(me->written);
  // When the store fails, the announced count is the session's own, sent once however
  // often the read fails; the count is still wanted, and goes out when a read succeeds.
  f.hub.announce_unread(me.get(), {5});
  ASSERT_EQ(f.recounts.size(), 3U);
  EXPECT_TRUE(f.recounts[2].second(std::nullopt));
  f.run_jobs();
  ASSERT_EQ(me->written.size(), 4U);
  EXPECT_EQ(me->written.back(), R"({"type":"unread","chat_id":5,"unread_count":4})");
  EXPECT_TRUE(f.recounts[2].second(std::nullopt));
  f.run_jobs();
  EXPECT_EQ(me->written.size(), 4U);
  f.recounts[2].second(UnreadCount{6, 0});
  f.run_jobs();
  ASSERT_EQ(me->written.size(), 5U);
  EXPECT_EQ(me->written.back(), R"({"type":"unread","chat_id":5,"unread_count":6})");
  // A session gone before the answer hears nothing, nothing breaks, and a failed read of
  // its count is not wanted again.
  f.hub.announce_unread(me.get(), {5});
  f.hub.detach(me.get());
  EXPECT_FALSE(f.recounts[3].second(std::nullopt));
  f.recounts[3].second(UnreadCount{9, 0});
  f.run_jobs();
  EXPECT_EQ(me->written.size(), 5U);
}

TEST(Hub, AFailedRecountOfALiveCountIsWantedAgainAndSentWhenItChanged) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {0, 3}}};
  f.hub.attach(me, chats, 0, nullptr);
  // The user's own read asks the store for the count (not `always`).
  f.hub.on_logged(read_of(1, 5, 2, 11));
  f.run_jobs();
  const auto before = me->written.size();  // the read event itself
  ASSERT_EQ(f.recounts.size(), 1U);
  EXPECT_TRUE(f.recounts[0].second(std::nullopt));  // failed: nothing sent, asked again
  f.run_jobs();
  EXPECT_EQ(me->written.size(), before);
  f.recounts[0].second(UnreadCount{0, 11});
  f.run_jobs();
  ASSERT_EQ(me->written.size(), before + 1);
  EXPECT_EQ(me->written.back(), R"({"type":"unread","chat_id":5,"unread_count":0})");
}

TEST(Hub, AMessageTheStoreCountedIsNotCountedAgainWhenHeardLate) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  // Opened with 1 unread, read when the log stood at seq 10.
  std::unordered_map<std::int64_t, UnreadState> chats{
      {5, {.last_read = 0, .unread = 1, .as_of = 10}}};
  f.hub.attach(me, chats, 10, nullptr);
  // A message at seq 10 still on its way when the socket opened: in its count already.
  f.hub.on_logged(message(10, 5, 100, 1));
  f.run_jobs();
  ASSERT_EQ(me->written.size(), 1U) << ::testing::PrintToString(me->written);
  EXPECT_NE(me->written[0].find(R"("message_id":100)"), std::string::npos);
  // A recount reads 3 at seq 13: messages 12 and 13 committed before the read but are
  // heard after its answer, message 14 after the read.
  f.hub.announce_unread(me.get(), {5});
  ASSERT_EQ(f.recounts.size(), 1U);
  f.recounts[0].second(UnreadCount{3, 13});
  f.hub.on_logged(message(12, 5, 102, 1));
  f.hub.on_logged(message(13, 5, 103, 1));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":3})")
      << ::testing::PrintToString(me->written);
  f.hub.on_logged(message(14, 5, 104, 1));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":4})");
  // One's own message past the count's seq reads the chat: nothing is unread.
  f.hub.on_logged(message(15, 5, 105, 2));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":0})");
  // The store counts 1 at seq 17: one's own message (16), then someone else's (17), both
  // heard late. Neither changes the count: the own one does not clear what came after it.
  f.hub.announce_unread(me.get(), {5});
  ASSERT_EQ(f.recounts.size(), 2U);
  f.recounts[1].second(UnreadCount{1, 17});
  f.hub.on_logged(message(16, 5, 106, 2));
  f.hub.on_logged(message(17, 5, 107, 1));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":1})")
      << ::testing::PrintToString(me->written);
  EXPECT_EQ(std::count_if(me->written.begin(), me->written.end(), is_unread), 4);
}

// A message deleted for everyone, or hidden by `only` (then the event is that user's).
chat::store::EventRecord deletion(std::int64_t seq, std::int64_t chat, std::int64_t id,
                                  std::optional<std::int64_t> only = std::nullopt) {
  chat::store::EventRecord e;
  e.seq = seq;
  e.chat_id = chat;
  e.type = "delete";
  e.user_id = only;
  e.payload = R"({"type":"delete","chat_id":)" + std::to_string(chat) + R"(,"message_id":)" +
              std::to_string(id) + "}";
  return e;
}

std::vector<std::string> unread_frames(const std::vector<std::string>& written) {
  std::vector<std::string> out;
  std::copy_if(written.begin(), written.end(), std::back_inserter(out), is_unread);
  return out;
}

TEST(Hub, AMessageDeletedForEveryoneLeavesTheCountBeforeTheRecountAnswers) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  // Read up to 100; 101-103 from someone else are unread, counted at seq 10.
  std::unordered_map<std::int64_t, UnreadState> chats{
      {5, {.last_read = 100, .unread = 3, .as_of = 10}}};
  f.hub.attach(me, chats, 10, nullptr);
  // 102 is deleted for everyone and a new message follows before the store answers: the
  // counts go 2 then 3, never 4.
  f.hub.on_logged(deletion(11, 5, 102));
  f.run_jobs();
  f.hub.on_logged(message(12, 5, 104, 1));
  f.run_jobs();
  EXPECT_EQ(unread_frames(me->written),
            (std::vector<std::string>{R"({"type":"unread","chat_id":5,"unread_count":2})",
                                      R"({"type":"unread","chat_id":5,"unread_count":3})"}));
  // The recount (asked after the deletion, answered after the message) confirms it:
  // asked again, nothing more is sent.
  ASSERT_EQ(f.recounts.size(), 1U);
  f.recounts[0].second(UnreadCount{3, 12});
  ASSERT_EQ(f.recounts.size(), 2U);
  f.recounts[1].second(UnreadCount{3, 12});
  f.run_jobs();
  EXPECT_EQ(unread_frames(me->written).size(), 2U);
  // Hidden by this user: it may have been deleted for everyone already, and out of the
  // count, so the store decides (101, deleted at 13 and then hidden, counts once). A
  // deletion of a read message changes nothing.
  f.hub.on_logged(deletion(13, 5, 101));
  f.hub.on_logged(deletion(14, 5, 101, 2));
  f.hub.on_logged(deletion(15, 5, 99));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":2})");
  ASSERT_EQ(f.recounts.size(), 4U);
  f.recounts[2].second(UnreadCount{2, 15});
  f.recounts[3].second(UnreadCount{2, 15});
  f.run_jobs();
  EXPECT_EQ(unread_frames(me->written).size(), 3U) << ::testing::PrintToString(me->written);
  // Or not deleted: the store's count comes down by one.
  f.hub.on_logged(deletion(16, 5, 103, 2));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":2})");
  f.recounts.back().second(UnreadCount{1, 16});
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":1})");
  f.hub.announce_unread(me.get(), {5});
  f.recounts.back().second(UnreadCount{1, 20});
  f.run_jobs();
  f.hub.on_logged(deletion(19, 5, 104));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":1})")
      << ::testing::PrintToString(me->written);
  EXPECT_EQ(unread_frames(me->written).size(), 5U) << ::testing::PrintToString(me->written);
}

TEST(Hub, ACountMadeOutOfDateByTheUsersReadIsNotMovedUntilTheStoreAnswers) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  // 7 unread, counted at seq 10.
  std::unordered_map<std::int64_t, UnreadState> chats{
      {5, {.last_read = 100, .unread = 7, .as_of = 10}}};
  f.hub.attach(me, chats, 10, nullptr);
  // The user reads everything (up to 107), and a message comes before the recount answers:
  // the count the client sees goes from 7 to 1, never to 8.
  f.hub.on_logged(read_of(11, 5, 2, 107));
  f.hub.on_logged(message(12, 5, 108, 1));
  f.run_jobs();
  EXPECT_TRUE(unread_frames(me->written).empty()) << ::testing::PrintToString(me->written);
  ASSERT_EQ(f.recounts.size(), 1U);
  // The store read 0 at seq 11, before the message: the message is added to it.
  f.recounts[0].second(UnreadCount{0, 11});
  f.run_jobs();
  EXPECT_EQ(unread_frames(me->written),
            std::vector<std::string>{R"({"type":"unread","chat_id":5,"unread_count":1})"});
  // Live again: the next message is told at once.
  f.hub.on_logged(message(13, 5, 109, 1));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":2})");
  // A hide waits the same way, and a count the store answers unchanged still goes out
  // when a change was held back meanwhile (the client shows an older one).
  f.hub.on_logged(deletion(14, 5, 109, 2));
  f.hub.on_logged(message(15, 5, 110, 1));
  f.run_jobs();
  EXPECT_EQ(unread_frames(me->written).size(), 2U);
  f.recounts.back().second(UnreadCount{1, 14});
  f.run_jobs();
  ASSERT_EQ(unread_frames(me->written).size(), 3U);
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":2})");
  // A count asked for before the read is older news, even answered after it; a read the
  // store cannot count: nothing is sent for it, and live changes are told again (the read
  // may be given up on); one's own message makes the count exact (0).
  f.hub.announce_unread(me.get(), {5});
  auto before_read = f.recounts.back().second;
  f.hub.on_logged(read_of(16, 5, 2, 109));
  f.run_jobs();
  before_read(UnreadCount{5, 15});
  f.run_jobs();
  ASSERT_EQ(unread_frames(me->written).size(), 3U);
  EXPECT_TRUE(f.recounts.back().second(std::nullopt));
  f.run_jobs();
  ASSERT_EQ(unread_frames(me->written).size(), 3U);
  f.hub.on_logged(message(17, 5, 111, 1));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":3})");
  f.hub.on_logged(read_of(18, 5, 2, 111));
  f.hub.on_logged(message(19, 5, 112, 2));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":0})");
}

TEST(Hub, ChatsHeardWhileASocketOpenedAreCountedAgain) {
  Fixture f;
  // Heard after the socket read its counts at seq 10, before it was attached: nothing
  // reached it, so those chats' counts are asked of the store again, the others' not.
  f.hub.on_logged(message(11, 5, 100, 1));
  f.hub.on_logged(message(12, 9, 101, 1));
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {.unread = 1, .as_of = 10}},
                                                      {6, {.as_of = 10}}};
  f.hub.attach(me, chats, 10, nullptr);
  ASSERT_EQ(f.recounts.size(), 1U);
  EXPECT_EQ(f.recounts[0].first, 5);
  f.recounts[0].second(UnreadCount{2, 12});
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":2})");
  // Read at seq 12: nothing missed.
  auto other = std::make_shared<FakeSession>(3, 0);
  f.hub.attach(other, chats, 12, nullptr);
  EXPECT_EQ(f.recounts.size(), 1U);
  // More events than the hub remembers went by: every chat is counted again.
  for (std::int64_t seq = 20; seq < 20 + 1100; ++seq) f.hub.on_logged(message(seq, 9, seq, 1));
  auto late = std::make_shared<FakeSession>(4, 0);
  f.hub.attach(late, chats, 15, nullptr);
  EXPECT_EQ(f.recounts.size(), 3U);
}

TEST(Hub, AChatCreatedHeardLateKeepsTheStateTheSocketOpenedWith) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {.unread = 2, .as_of = 10}}};
  f.hub.attach(me, chats, 10, nullptr);
  chat::store::EventRecord created;
  created.seq = 9;
  created.chat_id = 5;
  created.user_id = 2;
  created.type = "chat_created";
  created.payload = R"({"type":"chat_created","chat_id":5})";
  f.hub.on_logged(created);
  // Message 8 of the chat was counted when the socket opened; message 11 was not.
  f.hub.on_logged(message(8, 5, 100, 1));
  f.hub.on_logged(message(11, 5, 101, 1));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":3})")
      << ::testing::PrintToString(me->written);
}

TEST(Hub, AnAnswerReadBeforeTheCountTheSocketHasIsIgnored) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {.unread = 5, .as_of = 80}}};
  f.hub.attach(me, chats, 80, nullptr);
  // Two questions in flight; the newer answer (seq 100) comes back first and equals the
  // count, the older one (seq 90) after it.
  f.hub.announce_unread(me.get(), {5});
  f.hub.announce_unread(me.get(), {5});
  ASSERT_EQ(f.recounts.size(), 2U);
  f.recounts[1].second(UnreadCount{5, 100});
  f.recounts[0].second(UnreadCount{4, 90});
  // Message 95 was in the count read at 100.
  f.hub.on_logged(message(95, 5, 195, 1));
  f.run_jobs();
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":5,"unread_count":5})")
      << ::testing::PrintToString(me->written);
  EXPECT_EQ(std::count_if(me->written.begin(), me->written.end(),
                          [](const std::string& w) {
                            return w.find("\"unread_count\":4") != std::string::npos;
                          }),
            0);
}

TEST(Hub, OldestSocketsPastThePerUserLimitAreReturned) {
  Fixture f;
  std::vector<std::shared_ptr<FakeSession>> mine;
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {}}};
  std::vector<std::shared_ptr<Session>> evicted;
  for (int i = 0; i < 17; ++i) {
    mine.push_back(std::make_shared<FakeSession>(1, 0));
    for (auto& e : f.hub.attach(mine.back(), chats, 0, nullptr)) evicted.push_back(e);
  }
  ASSERT_EQ(evicted.size(), 1U);
  EXPECT_EQ(evicted[0], mine[0]);
}

TEST(Hub, NoLimitOnTheNodeWhenTheDeploymentCounts) {
  Fixture f;
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {}}};
  std::vector<std::shared_ptr<FakeSession>> mine;
  for (int i = 0; i < 20; ++i) {
    mine.push_back(std::make_shared<FakeSession>(1, 0));
    EXPECT_TRUE(f.hub.attach(mine.back(), chats, 0, nullptr, false).empty());
  }
  EXPECT_EQ(f.hub.session_count(), 20U);
}

TEST(Hub, SocketsPastTheDeploymentsLimitCloseByTheirSerials) {
  Fixture f;
  std::unordered_map<std::int64_t, UnreadState> chats{{3, {}}};
  auto first = std::make_shared<FakeSession>(1, 0);
  auto second = std::make_shared<FakeSession>(1, 3);
  auto third = std::make_shared<FakeSession>(1, 0);
  auto uncounted = std::make_shared<FakeSession>(1, 0);
  auto other = std::make_shared<FakeSession>(2, 0);
  first->serial = 10;
  second->serial = 11;
  third->serial = 12;
  other->serial = 11;  // serials are the deployment's, but a user's end names only theirs
  for (const auto& s : {first, second, third, uncounted, other}) {
    f.hub.attach(s, chats, 0, nullptr, false);
  }
  f.hub.on_session_end({1, 1008, "too many sockets", "", {10, 11, 99}});
  EXPECT_EQ(first->closed_with, 1008);
  EXPECT_EQ(second->closed_with, 1008);
  EXPECT_EQ(third->closed_with, 0);
  EXPECT_EQ(uncounted->closed_with, 0);
  EXPECT_EQ(other->closed_with, 0);
}

TEST(Hub, ALoggedOutSessionClosesOnlyItsOwnSockets) {
  Fixture f;
  std::unordered_map<std::int64_t, UnreadState> chats{{3, {}}};
  auto phone = std::make_shared<FakeSession>(1, 0);
  auto laptop = std::make_shared<FakeSession>(1, 0);
  auto other = std::make_shared<FakeSession>(2, 0);
  phone->session = "phone";
  laptop->session = "laptop";
  other->session = "phone";  // another user's session of the same name is not touched
  for (const auto& s : {phone, laptop, other}) f.hub.attach(s, chats, 0, nullptr);

  f.hub.on_session_end({1, 4003, "logged out", "phone"});
  EXPECT_EQ(phone->closed_with, 4003);
  EXPECT_EQ(laptop->closed_with, 0);
  EXPECT_EQ(other->closed_with, 0);

  f.hub.on_session_end({1, 4003, "account deactivated", ""});
  EXPECT_EQ(laptop->closed_with, 4003);
  EXPECT_EQ(other->closed_with, 0);
}

namespace {

chat::store::EventRecord member_event(std::int64_t seq, const char* type, std::int64_t chat,
                                      std::int64_t user, std::optional<std::int64_t> only) {
  chat::store::EventRecord e;
  e.seq = seq;
  e.chat_id = chat;
  e.user_id = only;
  e.type = type;
  e.payload = std::string(R"({"type":")") + type + R"(","chat_id":)" + std::to_string(chat) +
              R"(,"user_id":)" + std::to_string(user) + "}";
  return e;
}

bool mentions(const std::vector<std::string>& frames, const std::string& what) {
  return std::any_of(frames.begin(), frames.end(),
                     [&](const std::string& f) { return f.find(what) != std::string::npos; });
}

}  // namespace

TEST(Hub, AMemberRemovedWhileTheirSocketOpenedStopsHearingTheChatOnceSettled) {
  Fixture f;
  // The socket read its chats (5 and 6) at seq 10; the removal from 5 (the chat's copy and
  // the removed member's own) was heard before it was attached, and reached none of it.
  f.hub.on_logged(member_event(11, "member_removed", 5, 2, std::nullopt));
  f.hub.on_logged(member_event(12, "member_removed", 5, 2, 2));
  f.hub.on_logged(message(13, 9, 99, 1));  // another chat, other people
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {.as_of = 10}}, {6, {.as_of = 10}}};
  f.hub.attach(me, chats, 10, nullptr);
  const auto unsure = f.hub.membership_heard_since(2, 10);
  ASSERT_TRUE(unsure);
  EXPECT_EQ(*unsure, std::vector<std::int64_t>{5});
  EXPECT_EQ(f.hub.membership_heard_since(2, 12), std::vector<std::int64_t>{});
  EXPECT_EQ(f.hub.membership_heard_since(3, 10), std::vector<std::int64_t>{});
  // Read again at seq 13: only chat 6 is theirs. Settling subscribes nothing new: ready at once.
  int ready = 0;
  f.hub.settle(me, {{6, {.as_of = 13}}}, 13, unsure, [&ready] { ++ready; });
  EXPECT_EQ(ready, 1);
  f.hub.on_logged(message(14, 5, 100, 1));
  f.hub.on_logged(message(15, 6, 101, 1));
  f.run_jobs();
  EXPECT_FALSE(mentions(me->written, R"("message_id":100)"))
      << ::testing::PrintToString(me->written);
  EXPECT_TRUE(mentions(me->written, R"("message_id":101)"));
  // A count the socket held for chat 5 before it settled goes unsent (ws_session asks).
  EXPECT_EQ(f.hub.not_counted(me.get(), {5, 6, 9}), (std::vector<std::int64_t>{5, 9}));
  f.hub.detach(me.get());
  EXPECT_EQ(f.hub.not_counted(me.get(), {6}), std::vector<std::int64_t>{6});
}

TEST(Hub, AChatLeftLiveIsNoLongerCounted) {
  Fixture f;
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {0, 3}}, {6, {0, 1}}};
  f.hub.attach(me, chats, 0, nullptr);
  EXPECT_TRUE(f.hub.not_counted(me.get(), {5, 6}).empty());
  f.hub.on_logged(member_event(11, "member_removed", 5, 2, std::nullopt));
  f.hub.on_logged(member_event(12, "member_removed", 5, 2, 2));
  EXPECT_EQ(f.hub.not_counted(me.get(), {5, 6}), std::vector<std::int64_t>{5});
}

TEST(Hub, AChatJoinedWhileASocketOpenedIsHeardOnceSettled) {
  Fixture f;
  f.hub.on_logged(member_event(11, "member_added", 7, 2, std::nullopt));
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> none;
  f.hub.attach(me, none, 10, nullptr);
  const auto unsure = f.hub.membership_heard_since(2, 10);
  ASSERT_TRUE(unsure);
  EXPECT_EQ(*unsure, std::vector<std::int64_t>{7});
  int ready = 0;  // once the broker hears chat 7
  f.hub.settle(me, {{7, {.as_of = 11}}}, 11, unsure, [&ready] { ++ready; });
  EXPECT_EQ(ready, 1);
  ASSERT_EQ(f.recounts.size(), 1U);  // its count is sent, whatever it is
  EXPECT_EQ(f.recounts[0].first, 7);
  f.recounts[0].second(UnreadCount{0, 11});
  f.hub.on_logged(message(12, 7, 100, 1));
  f.run_jobs();
  EXPECT_TRUE(mentions(me->written, R"("message_id":100)"))
      << ::testing::PrintToString(me->written);
  EXPECT_EQ(last_unread(me->written), R"({"type":"unread","chat_id":7,"unread_count":1})");
}

namespace {

// User 2 is removed from chat 5 (seq 11) before their socket, which read its chats at seq
// 10, is attached. `joiner` joins chat 5 at seq 14, heard live after a read at seq 13 that
// found user 2 outside. Whether the socket, settled from that read, then hears chat 5.
bool hears_the_chat_after_a_removal_and_a_join(std::int64_t joiner) {
  Fixture f;
  f.hub.on_logged(member_event(11, "member_removed", 5, 2, std::nullopt));
  auto me = std::make_shared<FakeSession>(2, 0);
  std::unordered_map<std::int64_t, UnreadState> chats{{5, {.as_of = 10}}};
  f.hub.attach(me, chats, 10, nullptr);
  const auto unsure = f.hub.membership_heard_since(2, 10);
  f.hub.on_logged(member_event(14, "member_added", 5, joiner, std::nullopt));
  f.hub.settle(me, {}, 13, unsure, nullptr);
  f.hub.on_logged(message(15, 5, 100, 1));
  f.run_jobs();
  return mentions(me->written, R"("message_id":100)");
}

}  // namespace

TEST(Hub, SettlingLeavesAChatAsANewerMembershipEventHeardLiveSetIt) {
  // Added back, heard live: the socket hears the chat again.
  EXPECT_TRUE(hears_the_chat_after_a_removal_and_a_join(2));
  // Someone else joined: that says nothing of user 2's membership, which the read settles.
  EXPECT_FALSE(hears_the_chat_after_a_removal_and_a_join(3));
}

TEST(Hub, MembershipHeardSinceASeqTheRingNoLongerReachesIsUnknown) {
  Fixture f;
  // Messages do not turn the ring over: only membership changes are kept in it.
  for (std::int64_t seq = 11; seq <= 11 + 1100; ++seq) f.hub.on_logged(message(seq, 9, seq, 1));
  EXPECT_EQ(f.hub.membership_heard_since(2, 10), std::vector<std::int64_t>{});
  for (std::int64_t seq = 2000; seq < 2000 + 1100; ++seq) {
    f.hub.on_logged(member_event(seq, "member_added", 9, seq, std::nullopt));
  }
  EXPECT_FALSE(f.hub.membership_heard_since(2, 1500));
  EXPECT_TRUE(f.hub.membership_heard_since(2, 2200));
  // From the newest noted on, nothing has changed, however far the ring turned over.
  EXPECT_EQ(f.hub.membership_heard_since(2, 3099), std::vector<std::int64_t>{});
  EXPECT_EQ(f.hub.membership_heard_since(3099, 3098), std::vector<std::int64_t>{9});
}

TEST(Hub, ANewChatConcernsTheMembershipOfItsMembersOnly) {
  Fixture f;
  chat::store::EventRecord small;
  small.seq = 11;
  small.chat_id = 7;
  small.type = "chat_created";
  small.payload = R"({"type":"chat_created","chat_id":7,"chat":{"members":[{"id":3},{"id":4}]}})";
  f.hub.on_logged(small);
  EXPECT_EQ(f.hub.membership_heard_since(2, 10), std::vector<std::int64_t>{});
  EXPECT_EQ(f.hub.membership_heard_since(3, 10), std::vector<std::int64_t>{7});
  // A group too large to name each member concerns anyone.
  chat::store::EventRecord large = small;
  large.seq = 12;
  large.chat_id = 8;
  std::string members;
  for (int id = 100; id < 140; ++id) {
    // Piece by piece: g++ 12 warns falsely (-Wrestrict) about "x" + string.
    if (!members.empty()) members += ',';
    members += R"({"id":)";
    members += std::to_string(id);
    members += '}';
  }
  large.payload = R"({"type":"chat_created","chat_id":8,"chat":{"members":[)" + members + "]}}";
  f.hub.on_logged(large);
  EXPECT_EQ(f.hub.membership_heard_since(2, 10), std::vector<std::int64_t>{8});
}

namespace {

// Counts subscriptions as the Redis broker does: an unsubscribe from what it does not hear
// is ignored, and a subscribe adds one however late it comes.
class CountingBroker : public chat::realtime::Broker {
 public:
  void set_handler(chat::realtime::BrokerHandler* /*handler*/) override {}
  void publish_committed(const std::vector<chat::store::EventRecord>& /*events*/) override {}
  void publish_ephemeral(const chat::realtime::Ephemeral& /*event*/) override {}
  void publish_session_end(const chat::realtime::SessionEnd& /*end*/) override {}
  boost::asio::awaitable<void> flush() override { co_return; }
  void subscribe(std::vector<std::int64_t> chat_ids, std::vector<std::int64_t> user_ids,
                 std::optional<std::int64_t> /*from_seq*/, std::function<void()> ready) override {
    {
      std::lock_guard lock(mutex);
      for (auto id : chat_ids) ++chats[id];
      for (auto id : user_ids) ++users[id];
    }
    if (ready) ready();
  }
  void unsubscribe(std::vector<std::int64_t> chat_ids,
                   std::vector<std::int64_t> user_ids) override {
    std::lock_guard lock(mutex);
    auto drop = [this](std::map<std::int64_t, int>& refs, std::int64_t id) {
      auto it = refs.find(id);
      if (it == refs.end()) {
        ++ignored;
      } else if (--it->second == 0) {
        refs.erase(it);
      }
    };
    for (auto id : chat_ids) drop(chats, id);
    for (auto id : user_ids) drop(users, id);
  }
  void resync_from(std::int64_t /*first_seq*/) override {}
  [[nodiscard]] bool healthy() const override { return true; }

  std::mutex mutex;
  std::map<std::int64_t, int> chats, users;
  int ignored = 0;
};

// The chat as a member added to it is told of it (meant for them alone).
chat::store::EventRecord chat_created_for(std::int64_t seq, std::int64_t chat,
                                          std::int64_t member) {
  chat::store::EventRecord e;
  e.seq = seq;
  e.chat_id = chat;
  e.user_id = member;
  e.type = "chat_created";
  e.payload = R"({"type":"chat_created","chat":{"id":)" + std::to_string(chat) +
              R"(,"members":[{"id":)" + std::to_string(member) + "}]}}";
  return e;
}

}  // namespace

TEST(Hub, TheBrokerHearsSubscriptionChangesInTheOrderTheHubMadeThem) {
  // A user is added to a group while their only socket here closes. The hub subscribes to
  // the chat for the socket, then (closing it) unsubscribes; the broker must hear the two
  // in that order, or it goes on hearing the chat for good. The socket closes at the moment
  // that used to let the two cross: after the hub released its lock for the chat's event,
  // as it asks for the chat's unread count.
  CountingBroker broker;
  constexpr std::int64_t kUser = 5;
  constexpr std::int64_t kChat = 77;
  auto socket = std::make_shared<FakeSession>(kUser, 0);
  Hub* hub_of_test = nullptr;
  auto ask_count = [&](std::int64_t, std::int64_t,
                       std::function<bool(std::optional<UnreadCount>)>) {
    if (socket) hub_of_test->detach(std::exchange(socket, nullptr).get());
  };
  Hub hub{broker, ask_count, [](std::int64_t, std::int64_t, const std::vector<std::int64_t>&) {},
          [](std::function<void()> /*job*/) {}, 16};
  hub_of_test = &hub;
  hub.attach(socket, {}, std::nullopt, nullptr);
  hub.on_logged(chat_created_for(1, kChat, kUser));
  EXPECT_EQ(socket, nullptr);  // it closed meanwhile
  EXPECT_EQ(hub.session_count(), 0U);
  EXPECT_EQ(broker.ignored, 0);
  EXPECT_TRUE(broker.chats.empty()) << "the new chat is still heard";
  EXPECT_TRUE(broker.users.empty());
}

// A rename reaches each socket with its own read state after the chat object they share:
// user and chat sockets alike, the chat socket's state kept by the hub as messages come
// but never sent to it as `unread` frames.
TEST(Hub, AChatUpdatedCarriesEachSocketsOwnView) {
  Fixture f;
  constexpr std::int64_t kChat = 7;
  chat::store::RenamedChat renamed;
  auto& shared = renamed.shared;
  shared.chat.id = kChat;
  shared.chat.type = chat::store::ChatType::group;
  shared.chat.name = "renamed";
  for (std::int64_t u = 1; u <= 4; ++u) {
    shared.members.push_back({u, "u" + std::to_string(u), chat::store::Role::member, 0, 0, 0});
  }
  shared.last_message.emplace();
  shared.last_message->id = 120;
  shared.last_message->chat_id = kChat;
  shared.last_message->sender_id = 1;
  shared.last_message->client_id = "mine";
  renamed.seen_by_hiders = {{4, std::nullopt, {}}};  // user 4 hid it, and it was the only one
  chat::store::EventRecord rename;
  rename.seq = 10;
  rename.chat_id = kChat;
  rename.type = "chat_updated";
  rename.payload = chat::chats::chat_update_event(renamed).payload;

  auto sender = std::make_shared<FakeSession>(1, 0);
  auto reader = std::make_shared<FakeSession>(2, 0);
  auto chat_socket = std::make_shared<FakeSession>(3, kChat);
  auto hider = std::make_shared<FakeSession>(4, 0);
  f.hub.attach(sender, {{kChat, {120, 0}}}, 9, nullptr);
  f.hub.attach(reader, {{kChat, {100, 3}}}, 9, nullptr);
  f.hub.attach(chat_socket, {{kChat, {50, 0}}}, 9, nullptr);
  f.hub.attach(hider, {{kChat, {0, 1}}}, 9, nullptr);
  f.hub.on_logged(rename);
  f.run_jobs();
  auto chat_of = [](const std::shared_ptr<FakeSession>& s) {
    return boost::json::parse(s->written.back()).as_object();
  };
  const auto mine = chat_of(sender);
  EXPECT_EQ(mine.at("seq").as_int64(), 10);
  EXPECT_EQ(mine.at("chat").at("last_message").at("client_id").as_string(), "mine");
  EXPECT_EQ(mine.at("chat").at("last_read_message_id").as_int64(), 120);
  const auto theirs = chat_of(reader);
  EXPECT_TRUE(theirs.at("chat").at("last_message").at("client_id").is_null());
  EXPECT_EQ(theirs.at("chat").at("unread_count").as_int64(), 3);
  EXPECT_EQ(theirs.at("chat").at("last_read_message_id").as_int64(), 100);
  const auto on_chat_socket = chat_of(chat_socket);
  EXPECT_FALSE(on_chat_socket.contains("seq"));
  EXPECT_EQ(on_chat_socket.at("chat").at("last_read_message_id").as_int64(), 50);
  EXPECT_TRUE(chat_of(hider).at("chat").at("last_message").is_null());
  EXPECT_EQ(chat_of(hider).at("chat").at("unread_count").as_int64(), 1);

  // Two messages from user 1: the chat socket counts them without being told.
  f.hub.on_logged(message(11, kChat, 121, 1));
  f.hub.on_logged(message(12, kChat, 122, 1));
  rename.seq = 13;
  f.hub.on_logged(rename);
  f.run_jobs();
  EXPECT_TRUE(std::none_of(chat_socket->written.begin(), chat_socket->written.end(), is_unread));
  EXPECT_EQ(chat_of(chat_socket).at("chat").at("unread_count").as_int64(), 2);
  EXPECT_EQ(chat_of(reader).at("chat").at("unread_count").as_int64(), 5);
  EXPECT_EQ(chat_of(sender).at("chat").at("unread_count").as_int64(), 0);
}

// A node catching up from the log for another socket hears a chat's events again, back to
// before a member was added to it again; the member's socket hears the chat from its
// chat_created on and gets none of those (they are from while the user was not a member).
TEST(Hub, EventsLoggedBeforeAMembersChatCreatedDoNotReachThem) {
  Fixture f;
  constexpr std::int64_t kChat = 9;
  constexpr std::int64_t kUser = 5;
  auto socket = std::make_shared<FakeSession>(kUser, 0);
  f.hub.attach(socket, {}, std::nullopt, nullptr);
  f.hub.on_logged(chat_created_for(20, kChat, kUser));
  f.hub.on_logged(message(18, kChat, 100, 2));  // logged before the joining, heard late
  f.hub.on_logged(message(21, kChat, 101, 2));
  f.run_jobs();
  auto has = [&](const char* text) {
    return std::any_of(socket->written.begin(), socket->written.end(),
                       [&](const std::string& w) { return w.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has(R"("type":"chat_created")"));
  EXPECT_FALSE(has(R"("message_id":100)"));
  EXPECT_TRUE(has(R"("message_id":101)"));
}
