// What a node's sockets see of typing: a start, refreshes at most once per refresh period,
// a stop (said or by expiry) once, and nothing for a stop without a start. Each node runs
// this on what it hears, so these rules hold whichever node the typer is on.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "realtime/typing_relay.hpp"

namespace {

using namespace std::chrono_literals;
using chat::realtime::Ephemeral;
using chat::realtime::SessionEnd;
using chat::realtime::TypingRelay;
using chat::realtime::TypingUpdate;

class Recorder : public chat::realtime::BrokerHandler {
 public:
  void on_logged(const chat::store::EventRecord& e) override { logged.push_back(e.seq); }
  void on_ephemeral(const Ephemeral& e) override { ephemerals.push_back(e); }
  void on_session_end(const SessionEnd& e) override { ended.push_back(e.user_id); }

  // The is_typing flags of the typing events passed on, in order.
  std::vector<bool> flags() const {
    std::vector<bool> out;
    for (const auto& e : ephemerals) {
      out.push_back(boost::json::parse(e.payload).as_object().at("is_typing").as_bool());
    }
    return out;
  }

  std::vector<std::int64_t> logged, ended;
  std::vector<Ephemeral> ephemerals;
};

Ephemeral typing(std::int64_t chat, std::int64_t user, bool is_typing) {
  Ephemeral e;
  e.chat_ids = {chat};
  e.exclude_user_id = user;
  e.typing = TypingUpdate{chat, user, "ann", is_typing};
  return e;
}

TEST(TypingRelay, StartThrottledRefreshAndExpiry) {
  boost::asio::io_context io;
  Recorder out;
  TypingRelay relay(out, io.get_executor(), 300ms, 10s);
  relay.on_ephemeral(typing(7, 3, true));
  relay.on_ephemeral(typing(7, 3, true));  // a refresh within the period: not passed on
  ASSERT_EQ(out.flags(), (std::vector<bool>{true}));
  const auto& e = out.ephemerals[0];
  EXPECT_EQ(e.chat_ids, (std::vector<std::int64_t>{7}));
  EXPECT_EQ(e.exclude_user_id, 3);  // the typer's own sockets never see it
  EXPECT_FALSE(e.typing);
  EXPECT_EQ(boost::json::parse(e.payload),
            boost::json::parse(
                R"({"type":"typing","chat_id":7,"user_id":3,"username":"ann","is_typing":true})"));
  const auto started = std::chrono::steady_clock::now();
  io.run_for(1s);
  // No refresh: this node ends it by itself, once, after the expiry.
  EXPECT_EQ(out.flags(), (std::vector<bool>{true, false}));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
  // A stop heard after that (the typer's node ending it too) says nothing more.
  relay.on_ephemeral(typing(7, 3, false));
  EXPECT_EQ(out.flags(), (std::vector<bool>{true, false}));
}

TEST(TypingRelay, RefreshesKeepItGoingAndPassOnceAPeriod) {
  boost::asio::io_context io;
  Recorder out;
  TypingRelay relay(out, io.get_executor(), 700ms, 150ms);
  relay.on_ephemeral(typing(7, 3, true));
  for (int i = 0; i < 5; ++i) {  // refreshes every 200 ms for a second: past the 700 ms expiry
    io.run_for(200ms);
    io.restart();
    relay.on_ephemeral(typing(7, 3, true));
  }
  EXPECT_EQ(out.flags(), std::vector<bool>(6, true));
  io.run_for(1s);
  EXPECT_EQ(out.flags().back(), false);
  EXPECT_EQ(out.flags().size(), 7U);
}

TEST(TypingRelay, AStopEndsItAtOnceAndAStopAloneSaysNothing) {
  boost::asio::io_context io;
  Recorder out;
  TypingRelay relay(out, io.get_executor(), 300ms, 10s);
  relay.on_ephemeral(typing(7, 4, false));  // never started here
  EXPECT_TRUE(out.ephemerals.empty());
  relay.on_ephemeral(typing(7, 3, true));
  relay.on_ephemeral(typing(8, 3, true));  // another chat: its own indicator
  relay.on_ephemeral(typing(7, 3, false));
  EXPECT_EQ(out.flags(), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(out.ephemerals[2].chat_ids, (std::vector<std::int64_t>{7}));
  io.run_for(1s);
  // Chat 8's ends by expiry; chat 7's stop was already said.
  ASSERT_EQ(out.flags(), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(out.ephemerals[3].chat_ids, (std::vector<std::int64_t>{8}));
}

TEST(TypingRelay, EverythingElsePassesThrough) {
  boost::asio::io_context io;
  Recorder out;
  TypingRelay relay(out, io.get_executor());
  relay.on_ephemeral(Ephemeral{{1, 2}, 5, R"({"type":"user_status"})"});
  chat::store::EventRecord logged;
  logged.seq = 42;
  relay.on_logged(logged);
  relay.on_session_end(SessionEnd{9, 4003, "x"});
  ASSERT_EQ(out.ephemerals.size(), 1U);
  EXPECT_EQ(out.ephemerals[0].payload, R"({"type":"user_status"})");
  EXPECT_EQ(out.logged, (std::vector<std::int64_t>{42}));
  EXPECT_EQ(out.ended, (std::vector<std::int64_t>{9}));
}

}  // namespace

namespace {

chat::store::EventRecord message_from(std::int64_t seq, std::int64_t chat, std::int64_t sender) {
  chat::store::EventRecord e;
  e.seq = seq;
  e.chat_id = chat;
  e.type = "message";
  e.payload = R"({"type":"message","message_id":)" + std::to_string(seq) + R"(,"chat_id":)" +
              std::to_string(chat) + R"(,"text":"hi","sender":"ann","sender_id":)" +
              std::to_string(sender) + "}";
  return e;
}

}  // namespace

TEST(TypingRelay, TheTypersMessageEndsTheirIndicatorAfterIt) {
  boost::asio::io_context io;
  Recorder out;
  TypingRelay relay(out, io.get_executor(), 300ms, 10s);
  relay.on_ephemeral(typing(7, 3, true));
  relay.on_ephemeral(typing(7, 4, true));
  relay.on_logged(message_from(1, 8, 3));  // another chat
  relay.on_logged(message_from(2, 7, 5));  // someone else
  EXPECT_EQ(out.flags(), (std::vector<bool>{true, true}));
  relay.on_logged(message_from(3, 7, 3));
  EXPECT_EQ(out.logged, (std::vector<std::int64_t>{1, 2, 3}));  // the message went first
  ASSERT_EQ(out.flags(), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(boost::json::parse(out.ephemerals.back().payload),
            boost::json::parse(
                R"({"type":"typing","chat_id":7,"user_id":3,"username":"ann","is_typing":false})"));
  // Ended once: neither its expiry nor a stop says it again; user 4's still expires.
  relay.on_ephemeral(typing(7, 3, false));
  io.run_for(1s);
  EXPECT_EQ(out.flags(), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(out.ephemerals.back().exclude_user_id, 4);
}
