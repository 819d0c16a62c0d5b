#include <gtest/gtest.h>

#include <memory>

#include "ws/keepalive.hpp"

namespace {

using chat::ws::KeepAlive;

// Counts the sweeps that reached it; says it is done after `lifetime` of them.
struct Counted : KeepAlive::Watched {
  int seen = 0;
  int lifetime = 1000;
  bool keepalive(KeepAlive::Clock::time_point /*now*/) override { return ++seen < lifetime; }
};

}  // namespace

TEST(KeepAlive, SweepsEverySocketUntilItIsDoneOrGone) {
  KeepAlive keepalive(std::chrono::seconds(60));
  auto stays = std::make_shared<Counted>();
  auto finishes = std::make_shared<Counted>();
  finishes->lifetime = 2;
  auto vanishes = std::make_shared<Counted>();
  keepalive.watch(stays);
  keepalive.watch(finishes);
  keepalive.watch(vanishes);
  EXPECT_EQ(keepalive.watched(), 3U);

  const auto now = KeepAlive::Clock::now();
  keepalive.sweep(now);
  EXPECT_EQ(stays->seen, 1);
  EXPECT_EQ(finishes->seen, 1);
  EXPECT_EQ(vanishes->seen, 1);

  vanishes.reset();  // the socket ended: only a weak reference was held
  keepalive.sweep(now);
  EXPECT_EQ(finishes->seen, 2);  // said it was done on this sweep
  EXPECT_EQ(keepalive.watched(), 1U);

  keepalive.sweep(now);
  EXPECT_EQ(stays->seen, 3);
  EXPECT_EQ(finishes->seen, 2);  // forgotten
}
