// chatbench's own pieces: the histogram its percentiles come from, the frames it reads
// and writes, and the /proc readings behind its CPU and memory figures. A wrong percentile,
// a misread frame or a peak below what was seen would make the figures of make bench wrong.
#include <gtest/gtest.h>

#include <unistd.h>

#include <random>

#include "frames.hpp"
#include "histogram.hpp"
#include "proc_stats.hpp"

using namespace chatbench;

TEST(ChatbenchHistogram, PercentilesWithinItsResolution) {
  Histogram h;
  for (std::int64_t v = 1; v <= 100'000; ++v) h.record(v * 1000);  // 1 us .. 100 ms
  EXPECT_EQ(h.count(), 100'000U);
  EXPECT_EQ(h.max(), 100'000'000);
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const double exact = p / 100.0 * 100'000'000.0;
    EXPECT_NEAR(static_cast<double>(h.percentile(p)), exact, exact * 0.02) << p;
  }
  EXPECT_NEAR(h.mean(), 50'000'500.0, 1.0);
  EXPECT_EQ(h.percentile(100), h.max());
}

TEST(ChatbenchHistogram, SmallValuesAreExactAndMergeAddsUp) {
  Histogram a;
  Histogram b;
  for (int i = 0; i < 100; ++i) a.record(7);
  b.record(120);
  a.merge(b);
  EXPECT_EQ(a.count(), 101U);
  EXPECT_EQ(a.percentile(50), 7);
  EXPECT_EQ(a.percentile(100), 120);
  std::uint64_t total = 0;
  for (const auto& [edge, count] : a.buckets()) total += count;
  EXPECT_EQ(total, a.count());
}

TEST(ChatbenchFrames, ReadsWhatItWritesManyToARead) {
  // Server frames of every length class, back to back, as one read may bring them.
  std::string bytes;
  const std::vector<std::string> payloads{"a", std::string(200, 'b'), std::string(70'000, 'c')};
  for (const auto& p : payloads) bytes += server_frame(Opcode::text, p);
  std::size_t used = 0;
  for (const auto& p : payloads) {
    auto f = next_frame(bytes.data() + used, bytes.size() - used, 1 << 20);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->payload, p);
    used += f->size;
  }
  EXPECT_EQ(used, bytes.size());
  // A client frame is masked, and reads back (unmasked) the same.
  std::string masked = client_frame(Opcode::text, "hello");
  EXPECT_NE(masked.find("hello"), 0U);
  auto f = next_frame(masked.data(), masked.size(), 1024);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "hello");
  // Incomplete: no frame yet.
  std::string part = server_frame(Opcode::text, std::string(300, 'x')).substr(0, 100);
  EXPECT_FALSE(next_frame(part.data(), part.size(), 1024));
}

TEST(ChatbenchProcStats, ReadsThisProcessAndNoOther) {
  const ProcSample self = sample_process(getpid());
  ASSERT_TRUE(self.ok);
  EXPECT_GT(self.rss_kib, 0);
  EXPECT_GE(self.cpu_seconds, 0.0);
  EXPECT_FALSE(sample_process(0).ok);  // /proc/0 does not exist
}

TEST(ChatbenchProcStats, APeakIsTheMostAnySampleSaw) {
  // The kernel raises VmHWM lazily, so a later VmHWM may be below an earlier VmRSS.
  ProcSample earlier;
  earlier.rss_kib = 29256;
  earlier.peak_rss_kib = 29256;
  ProcSample later;
  later.rss_kib = 28900;
  later.peak_rss_kib = 29000;
  EXPECT_EQ(highest_rss({earlier, later}), 29256);
  later.peak_rss_kib = 31000;
  EXPECT_EQ(highest_rss({earlier, later}), 31000);
}
