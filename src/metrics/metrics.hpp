// What /metrics reports, in Prometheus' text format: counters, gauges and histograms kept
// in atomics, so the hot paths (a delivery, a query) pay one relaxed add and never a lock.
// One set per process, as a node is one process; a labelled family takes a lock only to
// find its child, and callers on hot paths keep the child they found.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace chat::metrics {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void add(std::int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void set(std::int64_t n) { value_.store(n, std::memory_order_relaxed); }
  // Raises the value to n (a high-water mark set from several threads).
  void raise_to(std::int64_t n) {
    auto v = value_.load(std::memory_order_relaxed);
    while (v < n && !value_.compare_exchange_weak(v, n, std::memory_order_relaxed)) {
    }
  }
  [[nodiscard]] std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Buckets in seconds, from half a millisecond to ten seconds: request, query and delivery
// times all fall in there.
std::span<const double> default_buckets();

class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds = default_buckets());
  void observe(double seconds);
  void observe_micros(std::int64_t micros) { observe(static_cast<double>(micros) / 1e6); }

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  [[nodiscard]] Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<std::uint64_t> sum_nanos_{0};
};

// Children of one metric by their label values, in a fixed label order. Children are never
// removed, so a reference stays good for the life of the process.
template <class T>
class Family {
 public:
  explicit Family(std::vector<std::string> label_names) : names_(std::move(label_names)) {}
  T& with(const std::vector<std::string>& values) {
    std::lock_guard lock(mutex_);
    auto& slot = children_[values];
    if (!slot) slot = std::make_unique<T>();
    return *slot;
  }
  [[nodiscard]] const std::vector<std::string>& label_names() const { return names_; }
  void each(const std::function<void(const std::vector<std::string>&, const T&)>& f) const {
    std::lock_guard lock(mutex_);
    for (const auto& [values, child] : children_) f(values, *child);
  }

 private:
  std::vector<std::string> names_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

// Everything a node counts. Names follow Prometheus' conventions (base units, _total).
struct Metrics {
  // The labels every node has start at zero, so a rate() sees their first increase.
  Metrics();

  // Connections: every TCP connection accepted, those open now (HTTP and upgraded).
  Counter connections_accepted;
  Gauge connections_open;
  // WebSockets on this node, by kind (user: /ws/, chat: /ws/chat/{id}/).
  Family<Gauge> sockets{{"kind"}};
  Family<Counter> sockets_opened{{"kind"}};
  Family<Counter> sockets_closed{{"kind", "code"}};
  Counter socket_frames_received;
  // Messages committed by this node (sent or forwarded), and frames queued on sockets.
  Counter messages_sent;
  Counter deliveries;
  // Time from an event's commit to this node's hub (through Redis on several nodes), and
  // the newest event seq the hub has seen.
  Histogram event_log_lag;
  Gauge event_log_seq;
  // Requests: latency by method and route pattern (never the raw path: ids would make a
  // child per chat), and counts by status.
  Family<Histogram> request_seconds{{"method", "route"}};
  Family<Counter> requests{{"method", "route", "status"}};
  // Database calls as the caller waits for them (queueing and group commit included).
  Family<Histogram> db_seconds{{"backend", "kind"}};
  Family<Counter> db_errors{{"backend", "kind"}};
  // PostgreSQL transactions rolled back and run again, by reason (deadlock: the server
  // broke a lock cycle after its deadlock_timeout; serialization; stale_plan).
  Family<Counter> db_retries{{"reason"}};
  // SQLite: transactions the writer committed (a group of one or more writes), and WAL
  // checkpoints by who ran them (background: the checkpoint thread; writer: the writer,
  // when the WAL outgrew the background ones).
  Counter sqlite_commits;
  Counter sqlite_group_redos;
  Family<Counter> sqlite_checkpoints{{"by"}};
  // Redis commands, as the caller waits for them.
  Histogram redis_seconds;
  Family<Counter> redis_errors{{"kind"}};
  Gauge redis_connected;
  // The Redis broker: live events held while a catch-up reads the log, and those dropped
  // past REDIS_MAX_HELD_EVENTS (read from the log again instead).
  Gauge broker_held_events;
  Counter broker_held_dropped;
  // Requests and sockets refused for going too fast, by what limited them.
  Family<Counter> throttled{{"kind"}};
};

Metrics& metrics();

// One kind of database call's latency and failures, looked up once by whoever makes them.
struct DbCallMetrics {
  Histogram& seconds;
  Counter& errors;
  static DbCallMetrics of(const std::string& backend, const std::string& kind);
  void record(std::chrono::steady_clock::time_point started, bool ok) const {
    seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (!ok) errors.inc();
  }
};

// Times one database call from construction to destruction; counts it as failed unless
// ok() was called (an exception leaves it failed).
class DbCallTimer {
 public:
  explicit DbCallTimer(const DbCallMetrics& m) : m_(m) {}
  ~DbCallTimer() { m_.record(started_, ok_); }
  DbCallTimer(const DbCallTimer&) = delete;
  DbCallTimer& operator=(const DbCallTimer&) = delete;
  void ok() { ok_ = true; }

 private:
  const DbCallMetrics& m_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  bool ok_ = false;
};

// The node's name in the `node` label of the socket gauges (host:port), set once at start.
void set_node_name(std::string name);

// The text /metrics answers: every metric above and the process' own (CPU, memory, open
// files, start time) read from /proc.
std::string render();

// Prometheus' text format escaping of a label value.
std::string escape_label(std::string_view value);

}  // namespace chat::metrics
