// The format events travel in between nodes: what is encoded decodes to the same event, and
// anything malformed is refused rather than trusted.
#include <gtest/gtest.h>

#include "realtime/broker_wire.hpp"

using namespace chat;
using namespace chat::realtime;

TEST(BrokerWire, LoggedEventsRoundTrip) {
  store::EventRecord e{42, 7, 3, "delete", R"({"type":"delete","chat_id":7,"message_id":9})", 99};
  auto decoded = decode_broker_message(encode_logged(e));
  ASSERT_TRUE(decoded);
  const auto& back = std::get<store::EventRecord>(*decoded);
  EXPECT_EQ(back.seq, 42);
  EXPECT_EQ(back.chat_id, 7);
  EXPECT_EQ(back.user_id, 3);
  EXPECT_EQ(back.type, "delete");
  EXPECT_EQ(back.payload, e.payload);
  EXPECT_EQ(back.created_at, 99);
  e.user_id.reset();
  e.payload = "{\"text\":\"line\\nbreak \xD0\x9F\"}";
  auto again = decode_broker_message(encode_logged(e));
  ASSERT_TRUE(again);
  EXPECT_FALSE(std::get<store::EventRecord>(*again).user_id);
  EXPECT_EQ(std::get<store::EventRecord>(*again).payload, e.payload);
  EXPECT_TRUE(std::get<store::EventRecord>(*again).hidden_from.empty());
}

TEST(BrokerWire, LoggedEventsKeepWhoHidTheirMessage) {
  store::EventRecord e{43, 7, std::nullopt, "edit", R"({"type":"edit","text":"a b"})", 99, {5, 12}};
  auto decoded = decode_broker_message(encode_logged(e));
  ASSERT_TRUE(decoded);
  const auto& back = std::get<store::EventRecord>(*decoded);
  EXPECT_EQ(back.type, "edit");
  EXPECT_EQ(back.hidden_from, (std::vector<std::int64_t>{5, 12}));
  EXPECT_EQ(back.payload, e.payload);
  EXPECT_FALSE(decode_broker_message("L1 2 0 3 edit 5,x\n{}"));
  EXPECT_FALSE(decode_broker_message("L1 2 0 3  5\n{}"));
}

TEST(BrokerWire, EphemeralEventsRoundTrip) {
  Ephemeral e{{1, 22, 333}, 5, R"({"type":"typing"})"};
  auto decoded = decode_broker_message(encode_ephemeral("node:1", e));
  ASSERT_TRUE(decoded);
  const auto& back = std::get<WireEphemeral>(*decoded);
  EXPECT_EQ(back.origin, "node:1");
  EXPECT_EQ(back.event.chat_ids, (std::vector<std::int64_t>{1, 22, 333}));
  EXPECT_EQ(back.event.exclude_user_id, 5);
  EXPECT_EQ(back.event.payload, e.payload);
}

TEST(BrokerWire, TypingUpdatesRoundTrip) {
  for (const bool is_typing : {true, false}) {
    Ephemeral e;
    e.chat_ids = {7};
    e.exclude_user_id = 3;
    e.typing = TypingUpdate{7, 3, "ann.o'neil+x@y", is_typing};
    auto decoded = decode_broker_message(encode_ephemeral("node:9", e));
    ASSERT_TRUE(decoded);
    const auto& back = std::get<WireEphemeral>(*decoded);
    EXPECT_EQ(back.origin, "node:9");
    EXPECT_EQ(back.event.chat_ids, (std::vector<std::int64_t>{7}));
    EXPECT_EQ(back.event.exclude_user_id, 3);
    EXPECT_EQ(back.event.payload, "");
    ASSERT_TRUE(back.event.typing);
    EXPECT_EQ(back.event.typing->chat_id, 7);
    EXPECT_EQ(back.event.typing->user_id, 3);
    EXPECT_EQ(back.event.typing->username, "ann.o'neil+x@y");
    EXPECT_EQ(back.event.typing->is_typing, is_typing);
  }
  // An ordinary ephemeral carries no typing update.
  auto plain = decode_broker_message(encode_ephemeral("n:1", Ephemeral{{1}, 2, "{}"}));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(std::get<WireEphemeral>(*plain).event.typing);
}

TEST(BrokerWire, SessionEndsRoundTrip) {
  SessionEnd end{77, 4003, "account deactivated"};
  auto decoded = decode_broker_message(encode_session_end(end));
  ASSERT_TRUE(decoded);
  const auto& back = std::get<SessionEnd>(*decoded);
  EXPECT_EQ(back.user_id, 77);
  EXPECT_EQ(back.code, 4003);
  EXPECT_EQ(back.reason, "account deactivated");
  EXPECT_EQ(back.session, "");
}

TEST(BrokerWire, ALoggedOutSessionRoundTrips) {
  SessionEnd end{77, 4003, "logged out", "0123456789abcdef0123456789abcdef"};
  auto decoded = decode_broker_message(encode_session_end(end));
  ASSERT_TRUE(decoded);
  const auto& back = std::get<SessionEnd>(*decoded);
  EXPECT_EQ(back.user_id, 77);
  EXPECT_EQ(back.code, 4003);
  EXPECT_EQ(back.session, end.session);
  EXPECT_EQ(back.reason, "logged out");
}

TEST(BrokerWire, SocketsPastTheLimitRoundTrip) {
  SessionEnd end{77, 1008, "too many sockets", "", {5, 900000000001}};
  const std::string wire = encode_session_end(end);
  // Not a "K": a node that does not know numbered sockets drops it rather than closing
  // every socket of the user.
  EXPECT_EQ(wire.front(), 'S');
  auto decoded = decode_broker_message(wire);
  ASSERT_TRUE(decoded);
  const auto& back = std::get<SessionEnd>(*decoded);
  EXPECT_EQ(back.user_id, 77);
  EXPECT_EQ(back.code, 1008);
  EXPECT_EQ(back.reason, "too many sockets");
  EXPECT_EQ(back.session, "");
  EXPECT_EQ(back.sockets, end.sockets);
}

TEST(BrokerWire, ChatNoticesRoundTrip) {
  const std::string wire = encode_chat_notice({900000000123, 42});
  // A kind of its own: a node of a version before it drops it.
  EXPECT_EQ(wire, "N900000000123 42\n");
  auto decoded = decode_broker_message(wire);
  ASSERT_TRUE(decoded);
  const auto& back = std::get<ChatNotice>(*decoded);
  EXPECT_EQ(back.seq, 900000000123);
  EXPECT_EQ(back.chat_id, 42);
}

TEST(BrokerWire, MalformedMessagesAreRefused) {
  for (const char* bad : {"",
                          "X1 2 3 4 t\n{}",
                          "L1 2 3 4 t",
                          "L1 2 3 4 \n{}",
                          "Lx 2 3 4 t\n{}",
                          "L1 2 3\n{}",
                          "L1 2 3 4 t\n",
                          "Enode 5 1,x\n{}",
                          "Enode 5\n{}",
                          "E 5 1\n",
                          "K0 4003\nx",
                          "Kx 4003\nx",
                          "K7 99\nx",
                          "K7 4003",
                          "K7 4003 \nx",
                          "K7 40x3 s\nx",
                          "S7 1008\nx",
                          "S7 1008 \nx",
                          "S7 1008 1,x\nx",
                          "S7 1008 0\nx",
                          "S7 1008 -4\nx",
                          "S0 1008 4\nx",
                          "S7 10 4\nx",
                          "Tn:1 7 3 1\n",
                          "Tn:1 7 3 2\nann",
                          "Tn:1 7 3\nann",
                          "Tn:1 0 3 1\nann",
                          "Tn:1 7 -3 1\nann",
                          "T 7 3 1\nann",
                          "Tn:1 x 3 1\nann",
                          "N5 7",
                          "N5 7\nx",
                          "N5\n",
                          "N0 7\n",
                          "N5 -7\n",
                          "N5 x\n"}) {
    EXPECT_FALSE(decode_broker_message(bad)) << bad;
  }
}
