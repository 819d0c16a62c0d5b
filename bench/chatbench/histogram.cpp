#include "histogram.hpp"

#include <algorithm>
#include <bit>

namespace chatbench {
namespace {

constexpr int kSubBits = 6;  // 64 buckets per power of two above 128
constexpr std::size_t kBuckets = 128 + 57 * 64;

std::size_t index_of(std::uint64_t v) {
  if (v < 128) return static_cast<std::size_t>(v);
  const int msb = 63 - std::countl_zero(v);
  const int shift = msb - kSubBits;
  return 128 + static_cast<std::size_t>(shift - 1) * 64 +
         static_cast<std::size_t>((v >> shift) - 64);
}

// The largest value that falls into bucket `i`.
std::int64_t upper_edge(std::size_t i) {
  if (i < 128) return static_cast<std::int64_t>(i);
  const std::size_t shift = (i - 128) / 64 + 1;
  const std::uint64_t sub = (i - 128) % 64 + 64;
  return static_cast<std::int64_t>(((sub + 1) << shift) - 1);
}

}  // namespace

Histogram::Histogram() : counts_(kBuckets, 0) {}

void Histogram::record(std::int64_t nanos) {
  const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(nanos, 0));
  ++counts_[std::min(index_of(v), kBuckets - 1)];
  ++count_;
  max_ = std::max(max_, static_cast<std::int64_t>(v));
  sum_ += static_cast<long double>(v);
}

void Histogram::merge(const Histogram& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

double Histogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::int64_t Histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(static_cast<long double>(count_) * p / 100.0L);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen > rank || seen == count_) return std::min(upper_edge(i), max_);
  }
  return max_;
}

std::vector<std::pair<std::int64_t, std::uint64_t>> Histogram::buckets() const {
  std::vector<std::pair<std::int64_t, std::uint64_t>> out;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i] != 0) out.emplace_back(upper_edge(i), counts_[i]);
  }
  return out;
}

}  // namespace chatbench
