#include <algorithm>
#include <charconv>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "auth/rate_limiter.hpp"

namespace chat::auth {
namespace {

class MemoryRateLimiter final : public RateLimiter {
 public:
  explicit MemoryRateLimiter(std::size_t max_keys) : max_keys_(max_keys) {}

  boost::asio::awaitable<Reservation> reserve(std::string key, int limit,
                                              std::int64_t window_seconds, Micros now) override {
    co_return reserve_now(std::move(key), limit, window_seconds * 1'000'000, now);
  }

  boost::asio::awaitable<void> release(std::string key, std::string id) override {
    release_now(key, id);
    co_return;
  }

  boost::asio::awaitable<std::int64_t> take(std::string key, int burst, std::int64_t window_seconds,
                                            Micros now) override {
    co_return take_now(std::move(key), bucket_shape(burst, window_seconds), now);
  }

 private:
  // A vector, not a deque: a key usually holds a few events, and a deque's first block
  // made each key cost about 850 bytes (170 MB at max_keys); now about 220 with a key of
  // 36 characters (44 MB).
  struct Window {
    std::vector<Micros> events;  // oldest first
    Micros window = 0;
  };

  static void expire(Window& w, Micros now) {
    auto& ev = w.events;
    const auto live =
        std::find_if(ev.begin(), ev.end(), [&](Micros t) { return t > now - w.window; });
    ev.erase(ev.begin(), live);
    if (ev.capacity() > 2 * ev.size() + 8) ev.shrink_to_fit();
  }

  Reservation reserve_now(std::string key, int limit, Micros window, Micros now) {
    std::lock_guard lock(mutex_);
    if (auto it = windows_.find(key); it != windows_.end()) {
      it->second.window = window;
      expire(it->second, now);
      const auto& events = it->second.events;
      if (static_cast<int>(events.size()) >= limit) {
        // Blocked until enough of the oldest events leave the window.
        const auto n = static_cast<std::size_t>(std::max(limit, 0));
        const Micros frees_at = (n == 0 ? now : events[events.size() - n] + window);
        return {std::max<std::int64_t>(1, (frees_at - now + 999'999) / 1'000'000), {}};
      }
    }
    // Keys whose window has passed go now and then, not only when the map is full: else
    // the memory of a burst of failures stayed until 200,000 keys came together.
    if (++adds_ % kSweepEvery == 0 || (windows_.size() >= max_keys_ && !windows_.contains(key))) {
      sweep(now);
    }
    auto& w = windows_[std::move(key)];
    w.window = window;
    // In time order, as expire() expects, though callers' clocks were read in another.
    w.events.insert(std::upper_bound(w.events.begin(), w.events.end(), now), now);
    // A key never needs more events than any limit could ask for.
    if (w.events.size() > 100'000) w.events.erase(w.events.begin());
    return {0, std::to_string(now)};
  }

  // Events of one key at the same time are alike: any of them goes.
  void release_now(const std::string& key, const std::string& id) {
    Micros at = 0;
    if (std::from_chars(id.data(), id.data() + id.size(), at).ec != std::errc()) return;
    std::lock_guard lock(mutex_);
    auto it = windows_.find(key);
    if (it == windows_.end()) return;
    auto& events = it->second.events;
    if (auto e = std::find(events.begin(), events.end(), at); e != events.end()) events.erase(e);
  }

  // Drops expired keys; when all are live, drops the half whose newest event is oldest.
  void sweep(Micros now) {
    for (auto it = windows_.begin(); it != windows_.end();) {
      expire(it->second, now);
      it = it->second.events.empty() ? windows_.erase(it) : std::next(it);
    }
    if (windows_.size() < max_keys_) return;
    std::vector<Micros> newest;
    newest.reserve(windows_.size());
    for (auto& [k, w] : windows_) newest.push_back(w.events.back());
    std::nth_element(newest.begin(),
                     newest.begin() + static_cast<std::ptrdiff_t>(newest.size() / 2), newest.end());
    const Micros cutoff = newest[newest.size() / 2];
    for (auto it = windows_.begin(); it != windows_.end();) {
      it = it->second.events.back() <= cutoff ? windows_.erase(it) : std::next(it);
    }
  }

  // GCRA: a bucket is remembered as the time at which it is full again (`full_at`); each
  // event taken moves that time one interval later, and an event is refused while it lies
  // more than burst - 1 intervals ahead.
  std::int64_t take_now(std::string key, BucketShape shape, Micros now) {
    const auto [interval, tolerance] = shape;
    std::lock_guard lock(bucket_mutex_);
    if (++takes_ % kSweepEvery == 0 || (buckets_.size() >= max_keys_ && !buckets_.contains(key))) {
      sweep_buckets(now);
    }
    Micros& full_at = buckets_.try_emplace(std::move(key), now).first->second;
    const Micros at = std::max(full_at, now);
    if (at - tolerance > now) return (at - tolerance - now + 999'999) / 1'000'000;
    full_at = at + interval;
    return 0;
  }

  // Drops full buckets (a missing key is one); when all are in use, the half nearest full.
  void sweep_buckets(Micros now) {
    std::erase_if(buckets_, [now](const auto& b) { return b.second <= now; });
    if (buckets_.size() < max_keys_) return;
    std::vector<Micros> times;
    times.reserve(buckets_.size());
    for (const auto& [k, t] : buckets_) times.push_back(t);
    std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2),
                     times.end());
    const Micros cutoff = times[times.size() / 2];
    std::erase_if(buckets_, [cutoff](const auto& b) { return b.second <= cutoff; });
  }

  static constexpr std::uint64_t kSweepEvery = 1024;

  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;
  std::size_t max_keys_;
  std::uint64_t adds_ = 0;

  std::mutex bucket_mutex_;
  std::unordered_map<std::string, Micros> buckets_;
  std::uint64_t takes_ = 0;
};

}  // namespace

std::unique_ptr<RateLimiter> make_memory_rate_limiter(std::size_t max_keys) {
  return std::make_unique<MemoryRateLimiter>(max_keys);
}

}  // namespace chat::auth
