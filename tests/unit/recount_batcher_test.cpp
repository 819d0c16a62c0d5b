// The recounts asked in one turn become one store read per user, each chat read once, and
// every asker gets its chat's count with the read's seq. An asker is told of each failed
// read, and the read is asked again later while the asker still wants the count.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "realtime/recount_batcher.hpp"

namespace {

using chat::realtime::RecountBatcher;
using chat::store::UnreadCount;
using chat::store::UnreadCounts;

struct Fixture {
  struct Read {
    std::int64_t user = 0;
    std::vector<std::int64_t> chats;
    std::function<void(std::optional<UnreadCounts>)> done;
  };
  std::vector<Read> reads;
  std::vector<std::function<void()>> posted;
  std::vector<std::pair<std::chrono::milliseconds, std::function<void()>>> delayed;
  RecountBatcher batcher{[this](std::int64_t user, std::vector<std::int64_t> chats,
                                std::function<void(std::optional<UnreadCounts>)> done) {
                           reads.push_back({user, std::move(chats), std::move(done)});
                         },
                         [this](std::function<void()> job) { posted.push_back(std::move(job)); },
                         [this](std::chrono::milliseconds delay, std::function<void()> job) {
                           delayed.emplace_back(delay, std::move(job));
                         }};

  void run_posted() {
    auto jobs = std::move(posted);
    posted.clear();
    for (auto& job : jobs) job();
  }

  // Runs the delayed jobs, as if their delays had passed; returns their delays.
  std::vector<std::chrono::milliseconds> run_delayed() {
    auto jobs = std::move(delayed);
    delayed.clear();
    std::vector<std::chrono::milliseconds> delays;
    for (auto& [delay, job] : jobs) {
      delays.push_back(delay);
      job();
    }
    return delays;
  }
};

// Collects what one asker was told; it wants the count while `wanted`.
struct Answer {
  bool told = false;
  int failures = 0;
  bool wanted = true;
  std::optional<UnreadCount> count;
  RecountBatcher::Done done() {
    return [this](std::optional<UnreadCount> c) {
      told = true;
      if (!c) ++failures;
      count = c;
      return wanted;
    };
  }
};

TEST(RecountBatcher, RecountsOfOneTurnAreOneReadPerUserWithEachChatOnce) {
  Fixture f;
  Answer a5, a6, again5, b5;
  f.batcher.ask(5, 1, a5.done());
  f.batcher.ask(6, 1, a6.done());
  f.batcher.ask(5, 1, again5.done());  // another socket of the same user
  f.batcher.ask(5, 2, b5.done());
  EXPECT_EQ(f.posted.size(), 1U);  // one job for the turn
  EXPECT_TRUE(f.reads.empty());    // nothing read before the turn ends
  f.run_posted();
  ASSERT_EQ(f.reads.size(), 2U);
  const auto& first = f.reads[0].user == 1 ? f.reads[0] : f.reads[1];
  const auto& second = f.reads[0].user == 1 ? f.reads[1] : f.reads[0];
  EXPECT_EQ(first.chats, (std::vector<std::int64_t>{5, 6}));
  EXPECT_EQ(second.chats, (std::vector<std::int64_t>{5}));

  first.done(UnreadCounts{{4, 9}, 77});
  ASSERT_TRUE(a5.count && a6.count && again5.count);
  EXPECT_EQ(a5.count->count, 4);
  EXPECT_EQ(a6.count->count, 9);
  EXPECT_EQ(again5.count->count, 4);
  EXPECT_EQ(a5.count->seq, 77);
  EXPECT_EQ(a6.count->seq, 77);
  EXPECT_FALSE(b5.told);  // the other user's read has not answered yet

  second.done(std::nullopt);  // the store failed: told so, and asked again later
  EXPECT_TRUE(b5.told);
  EXPECT_FALSE(b5.count);
  EXPECT_EQ(f.delayed.size(), 1U);
}

TEST(RecountBatcher, AFailedReadIsAskedAgainAfterASecond) {
  Fixture f;
  Answer a, b;
  f.batcher.ask(5, 1, a.done());
  f.batcher.ask(6, 1, b.done());
  f.run_posted();
  ASSERT_EQ(f.reads.size(), 1U);
  f.reads[0].done(std::nullopt);
  EXPECT_EQ(a.failures, 1);
  EXPECT_EQ(b.failures, 1);
  EXPECT_TRUE(f.posted.empty());  // nothing read again at once

  EXPECT_EQ(f.run_delayed(), (std::vector<std::chrono::milliseconds>{std::chrono::seconds(1)}));
  f.run_posted();
  ASSERT_EQ(f.reads.size(), 2U);
  EXPECT_EQ(f.reads[1].user, 1);
  EXPECT_EQ(f.reads[1].chats, (std::vector<std::int64_t>{5, 6}));
  f.reads[1].done(UnreadCounts{{3, 8}, 40});
  ASSERT_TRUE(a.count && b.count);
  EXPECT_EQ(a.count->count, 3);
  EXPECT_EQ(b.count->count, 8);
  EXPECT_EQ(b.count->seq, 40);
}

TEST(RecountBatcher, AReadIsAskedAgainAtMostTwentyFourTimesInAboutTenMinutes) {
  Fixture f;
  Answer a;
  f.batcher.ask(5, 1, a.done());
  std::vector<std::chrono::milliseconds> delays;
  for (int attempt = 1; attempt <= RecountBatcher::kAttempts; ++attempt) {
    f.run_posted();
    ASSERT_EQ(f.reads.size(), static_cast<std::size_t>(attempt));
    f.reads.back().done(std::nullopt);
    EXPECT_EQ(a.failures, attempt);
    const auto ran = f.run_delayed();
    delays.insert(delays.end(), ran.begin(), ran.end());
  }
  EXPECT_FALSE(a.count);
  EXPECT_TRUE(f.posted.empty());  // the last failure is not asked again
  // 1 s, doubling up to 30 s: about ten minutes of tries in all.
  ASSERT_EQ(delays.size(), static_cast<std::size_t>(RecountBatcher::kAttempts - 1));
  EXPECT_EQ(delays[0], std::chrono::seconds(1));
  EXPECT_EQ(delays[1], std::chrono::seconds(2));
  EXPECT_EQ(delays[4], std::chrono::seconds(16));
  EXPECT_EQ(delays[5], std::chrono::seconds(30));
  EXPECT_EQ(delays.back(), std::chrono::seconds(30));
  std::chrono::milliseconds total{0};
  for (auto d : delays) total += d;
  EXPECT_GE(total, std::chrono::minutes(9));
  EXPECT_LE(total, std::chrono::minutes(10));
}

TEST(RecountBatcher, AnAskerThatNoLongerWantsTheCountIsNotAskedAgain) {
  Fixture f;
  Answer gone, kept;
  gone.wanted = false;  // its socket closed
  f.batcher.ask(5, 1, gone.done());
  f.batcher.ask(6, 1, kept.done());
  f.run_posted();
  f.reads[0].done(std::nullopt);
  EXPECT_EQ(gone.failures, 1);
  f.run_delayed();
  f.run_posted();
  ASSERT_EQ(f.reads.size(), 2U);
  EXPECT_EQ(f.reads[1].chats, (std::vector<std::int64_t>{6}));
}

TEST(RecountBatcher, AskersRetryAfterTheDelayOfTheirOwnFailures) {
  Fixture f;
  Answer old_one, new_one;
  f.batcher.ask(5, 1, old_one.done());
  f.run_posted();
  f.reads[0].done(std::nullopt);
  EXPECT_EQ(f.run_delayed(), (std::vector<std::chrono::milliseconds>{std::chrono::seconds(1)}));
  f.batcher.ask(6, 1, new_one.done());  // joins the retried read
  f.run_posted();
  ASSERT_EQ(f.reads.size(), 2U);
  f.reads[1].done(std::nullopt);
  // The first has failed twice, the second once: each waits its own delay.
  auto delays = f.run_delayed();
  std::sort(delays.begin(), delays.end());
  EXPECT_EQ(delays, (std::vector<std::chrono::milliseconds>{std::chrono::seconds(1),
                                                            std::chrono::seconds(2)}));
}

TEST(RecountBatcher, AnAskerRetriedJoinsTheNewOnesOfItsTurn) {
  Fixture f;
  Answer old_one, new_one;
  f.batcher.ask(5, 1, old_one.done());
  f.run_posted();
  f.reads[0].done(std::nullopt);
  f.batcher.ask(5, 1, new_one.done());  // another socket asks while the first waits
  f.run_delayed();
  f.run_posted();  // one turn: both askers, chat 5 read once
  ASSERT_EQ(f.reads.size(), 2U);
  EXPECT_EQ(f.reads[1].chats, (std::vector<std::int64_t>{5}));
  f.reads[1].done(UnreadCounts{{2}, 9});
  ASSERT_TRUE(old_one.count && new_one.count);
  EXPECT_EQ(old_one.count->count, 2);
  EXPECT_EQ(new_one.count->count, 2);
}

TEST(RecountBatcher, ManyChatsAreReadInPartsOfBoundedSize) {
  Fixture f;
  const std::size_t n = 2 * RecountBatcher::kChatsPerRead + 2;
  std::vector<Answer> answers(n);
  for (std::size_t i = 0; i < n; ++i)
    f.batcher.ask(static_cast<std::int64_t>(n - i), 1, answers[i].done());
  f.run_posted();
  ASSERT_EQ(f.reads.size(), 3U);
  std::vector<std::int64_t> all;
  for (const auto& read : f.reads) {
    EXPECT_LE(read.chats.size(), RecountBatcher::kChatsPerRead);
    all.insert(all.end(), read.chats.begin(), read.chats.end());
    UnreadCounts counts;
    for (const std::int64_t chat : read.chats) counts.counts.push_back(chat * 10);
    counts.seq = 5;
    read.done(counts);
  }
  ASSERT_EQ(all.size(), n);  // each chat in one part
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(answers[i].count) << i;
    EXPECT_EQ(answers[i].count->count, static_cast<std::int64_t>(n - i) * 10);
  }
}

TEST(RecountBatcher, AskingFromAnAnswerStartsTheNextBatch) {
  Fixture f;
  Answer later;
  bool asked_again = false;
  f.batcher.ask(3, 1, [&](std::optional<UnreadCount>) {
    asked_again = true;
    f.batcher.ask(3, 1, later.done());  // as the hub does when the count moved meanwhile
    return false;
  });
  f.run_posted();
  ASSERT_EQ(f.reads.size(), 1U);
  f.reads[0].done(UnreadCounts{{1}, 10});
  EXPECT_TRUE(asked_again);
  EXPECT_EQ(f.posted.size(), 1U);
  f.run_posted();
  ASSERT_EQ(f.reads.size(), 2U);
  f.reads[1].done(UnreadCounts{{2}, 11});
  ASSERT_TRUE(later.count);
  EXPECT_EQ(later.count->count, 2);
  EXPECT_EQ(later.count->seq, 11);
}

}  // namespace
