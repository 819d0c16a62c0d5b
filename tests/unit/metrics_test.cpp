// The pieces under /metrics and the structured log lines: histogram buckets, label
// escaping, the text format, and log fields that cannot break their line.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <array>
#include <string>
#include <thread>
#include <vector>

#include "common/json_text.hpp"
#include "common/log_event.hpp"
#include "metrics/metrics.hpp"

using namespace chat;

TEST(Histogram, CountsIntoCumulativeBuckets) {
  static constexpr std::array<double, 3> bounds{0.001, 0.01, 0.1};
  metrics::Histogram h(bounds);
  h.observe(0.0005);     // le 0.001
  h.observe(0.001);      // le 0.001: bounds are inclusive
  h.observe(0.05);       // le 0.1
  h.observe(3.0);        // +Inf only
  h.observe_micros(-5);  // a clock step backwards counts as zero
  const auto s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{3, 3, 4, 5}));
  EXPECT_EQ(s.count, 5U);
  EXPECT_NEAR(s.sum, 0.0005 + 0.001 + 0.05 + 3.0, 1e-6);
}

TEST(Histogram, ConcurrentObservationsAreAllCounted) {
  metrics::Histogram h;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.observe(0.002);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.snapshot().count, 40000U);
  EXPECT_NEAR(h.snapshot().sum, 80.0, 1e-3);
}

TEST(Gauge, RaiseToKeepsTheHighestValue) {
  metrics::Gauge g;
  g.raise_to(5);
  g.raise_to(3);
  EXPECT_EQ(g.value(), 5);
  g.raise_to(9);
  EXPECT_EQ(g.value(), 9);
}

TEST(Metrics, LabelValuesAreEscaped) {
  EXPECT_EQ(metrics::escape_label(R"(a"b\c)"
                                  "\n"),
            R"(a\"b\\c\n)");
}

TEST(Metrics, RenderShowsWhatWasCounted) {
  auto& m = metrics::metrics();
  const auto before = m.messages_sent.value();
  m.messages_sent.inc(3);
  m.requests.with({"GET", "/api/x/{id}/", "200"}).inc();
  m.request_seconds.with({"GET", "/api/x/{id}/"}).observe(0.003);
  const std::string text = metrics::render();
  EXPECT_NE(text.find("# TYPE chatd_messages_sent_total counter\nchatd_messages_sent_total " +
                      std::to_string(before + 3) + "\n"),
            std::string::npos);
  EXPECT_NE(
      text.find(R"(chatd_http_requests_total{method="GET",route="/api/x/{id}/",status="200"} )"),
      std::string::npos);
  EXPECT_NE(
      text.find(
          R"(chatd_http_request_duration_seconds_bucket{method="GET",route="/api/x/{id}/",le="0.005"} )"),
      std::string::npos);
  EXPECT_NE(text.find(R"(le="+Inf"})"), std::string::npos);
  // Bounds as people write them in queries, not in exponent form.
  EXPECT_NE(text.find(R"(le="0.0005"})"), std::string::npos);
  for (auto at = text.find("le=\""); at != std::string::npos; at = text.find("le=\"", at + 1)) {
    const auto end = text.find('"', at + 4);
    EXPECT_EQ(text.substr(at + 4, end - at - 4).find('e'), std::string::npos)
        << text.substr(at, 20);
  }
  // Labels every node has are there before anything happened to them.
  EXPECT_NE(text.find(R"(chatd_throttled_total{kind="ws_sockets"} )"), std::string::npos);
  EXPECT_NE(text.find("process_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(text.find("process_open_fds "), std::string::npos);
}

TEST(LogEvent, JsonStringsEscapeEverythingThatWouldBreakALine) {
  std::string out;
  json_text::append_string(out, "a\"b\\c\nd\te\x01");
  EXPECT_EQ(out, R"("a\"b\\c\nd\te\u0001")");
  out.clear();
  json_text::append_string(out, "caf\xc3\xa9");  // UTF-8 stays as it is
  EXPECT_EQ(out, "\"caf\xc3\xa9\"");
  out.clear();
  json_text::append_string(out, "bad\xff");  // not UTF-8: escaped byte by byte
  EXPECT_EQ(out, R"("bad\u00ff")");
  EXPECT_EQ(boost::json::parse(out).as_string(), "bad\xc3\xbf");
}
