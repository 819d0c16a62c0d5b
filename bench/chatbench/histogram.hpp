// A log-linear latency histogram in the manner of HdrHistogram: exact below 128 ns, then
// 64 buckets per power of two (under 1.6 % error), so millions of samples cost a few KiB
// and percentiles come out of one pass.
#pragma once

#include <cstdint>
#include <vector>

namespace chatbench {

class Histogram {
 public:
  Histogram();
  void record(std::int64_t nanos);
  void merge(const Histogram& other);
  [[nodiscard]] std::uint64_t count() const { return count_; }
  [[nodiscard]] std::int64_t max() const { return max_; }
  [[nodiscard]] double mean() const;
  // The value at or below which `p` percent of samples lie (an upper bucket edge).
  [[nodiscard]] std::int64_t percentile(double p) const;
  // (upper edge, count) of every non-empty bucket, for charts.
  [[nodiscard]] std::vector<std::pair<std::int64_t, std::uint64_t>> buckets() const;

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::int64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace chatbench
