#include "ws/held_order.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

struct Held {
  std::int64_t seq;  // 0: not logged
  std::string name;
};

std::vector<std::string> names(const std::vector<Held>& held) {
  std::vector<std::string> out;
  out.reserve(held.size());
  for (const auto& h : held) out.push_back(h.name);
  return out;
}

std::vector<std::string> ordered(std::vector<Held> held) {
  chat::ws::in_seq_order(held);
  return names(held);
}

TEST(HeldOrder, FramesAlreadyInOrderStayAsTheyAre) {
  EXPECT_EQ(ordered({{0, "status"}, {5, "m5"}, {0, "unread5"}, {6, "m6"}, {0, "unread6"}}),
            (std::vector<std::string>{"status", "m5", "unread5", "m6", "unread6"}));
  EXPECT_TRUE(ordered({}).empty());
  EXPECT_EQ(ordered({{0, "a"}, {0, "b"}}), (std::vector<std::string>{"a", "b"}));
}

TEST(HeldOrder, LoggedFramesGoInSeqOrder) {
  EXPECT_EQ(ordered({{153, "A153"}, {154, "A154"}, {107, "B107"}, {111, "B111"}}),
            (std::vector<std::string>{"B107", "B111", "A153", "A154"}));
}

// A chat heard live (A) and one read from the log (B), each message followed by its count:
// every count comes after the messages it counts.
TEST(HeldOrder, ACountComesAfterEveryMessageThatArrivedBeforeIt) {
  const auto out = ordered({{153, "A153"},
                            {0, "unreadA1"},
                            {154, "A154"},
                            {0, "unreadA2"},
                            {107, "B107"},
                            {0, "unreadB1"},
                            {111, "B111"},
                            {0, "unreadB2"}});
  EXPECT_EQ(out, (std::vector<std::string>{"B107", "B111", "A153", "unreadA1", "A154", "unreadA2",
                                           "unreadB1", "unreadB2"}));
}

TEST(HeldOrder, FramesNotLoggedKeepTheirOrderAndGoFirstWhenNothingPrecedesThem) {
  const auto out = ordered({{0, "first"}, {9, "m9"}, {0, "x"}, {3, "m3"}, {0, "y"}, {0, "z"}});
  EXPECT_EQ(out, (std::vector<std::string>{"first", "m3", "m9", "x", "y", "z"}));
}

TEST(HeldOrder, EqualSeqsKeepTheirArrivalOrder) {
  EXPECT_EQ(ordered({{4, "a"}, {2, "b"}, {4, "c"}, {0, "u"}, {2, "d"}}),
            (std::vector<std::string>{"b", "d", "a", "c", "u"}));
}

}  // namespace
