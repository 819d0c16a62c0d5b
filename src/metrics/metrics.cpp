#include "metrics/metrics.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace chat::metrics {
namespace {

constexpr std::array<double, 14> kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};

std::mutex node_mutex;
std::string node_name = "chatd";  // NOLINT: guarded by node_mutex

// The shortest text that reads back as the same double (0.0025, not 0.0025000000000000001).
std::string number(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return {buf, r.ptr};
}

// A bucket bound as people write it in queries: 0.0005, not 5e-04.
std::string bound(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// `name{a="x",b="y"}` (or just `name` without labels); `extra` is appended inside the braces.
std::string series(std::string_view name, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view extra = {}) {
  std::string out(name);
  if (names.empty() && extra.empty()) return out;
  out += '{';
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i] + "=\"" + escape_label(values[i]) + '"';
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  return out + '}';
}

class Writer {
 public:
  void header(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const std::string& series, const std::string& value) {
    out_ += series;
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  void counter(std::string_view name, std::string_view help, const Counter& c) {
    header(name, "counter", help);
    sample(std::string(name), std::to_string(c.value()));
  }
  void gauge(std::string_view name, std::string_view help, std::int64_t v) {
    header(name, "gauge", help);
    sample(std::string(name), std::to_string(v));
  }
  void counters(std::string_view name, std::string_view help, const Family<Counter>& f) {
    header(name, "counter", help);
    f.each([&](const std::vector<std::string>& values, const Counter& c) {
      sample(series(name, f.label_names(), values), std::to_string(c.value()));
    });
  }
  void gauges(std::string_view name, std::string_view help, const Family<Gauge>& f,
              std::string_view extra) {
    header(name, "gauge", help);
    f.each([&](const std::vector<std::string>& values, const Gauge& g) {
      sample(series(name, f.label_names(), values, extra), std::to_string(g.value()));
    });
  }
  void histogram_samples(std::string_view name, const std::vector<std::string>& names,
                         const std::vector<std::string>& values, const Histogram& h) {
    const auto s = h.snapshot();
    const std::string bucket = std::string(name) + "_bucket";
    for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
      const std::string le = i < s.bounds.size() ? bound(s.bounds[i]) : std::string("+Inf");
      sample(series(bucket, names, values, "le=\"" + le + '"'), std::to_string(s.cumulative[i]));
    }
    sample(series(std::string(name) + "_sum", names, values), number(s.sum));
    sample(series(std::string(name) + "_count", names, values), std::to_string(s.count));
  }
  void histogram(std::string_view name, std::string_view help, const Histogram& h) {
    header(name, "histogram", help);
    histogram_samples(name, {}, {}, h);
  }
  void histograms(std::string_view name, std::string_view help, const Family<Histogram>& f) {
    header(name, "histogram", help);
    f.each([&](const std::vector<std::string>& values, const Histogram& h) {
      histogram_samples(name, f.label_names(), values, h);
    });
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// The process' own figures, as Prometheus' client libraries name them.
void process_metrics(Writer& w) {
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the command name (which may hold spaces) start past the last ')'.
  const auto close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> f;
    for (std::string x; rest >> x;) f.push_back(x);
    // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22, rss 24.
    if (f.size() > 21) {
      const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
      const double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
      w.header("process_cpu_seconds_total", "counter", "User and system CPU time spent.");
      w.sample("process_cpu_seconds_total", number(cpu));
      const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
      w.header("process_resident_memory_bytes", "gauge", "Resident memory size.");
      w.sample("process_resident_memory_bytes", number(std::stod(f[21]) * page));
      std::ifstream uptime("/proc/stat");
      for (std::string l; std::getline(uptime, l);) {
        if (l.starts_with("btime ")) {
          const double boot = std::stod(l.substr(6));
          w.header("process_start_time_seconds", "gauge", "Start time since the Unix epoch.");
          w.sample("process_start_time_seconds", number(boot + std::stod(f[19]) / ticks));
          break;
        }
      }
    }
  }
  std::error_code ec;
  std::int64_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  w.gauge("process_open_fds", "Open file descriptors.", fds);
}

}  // namespace

std::span<const double> default_buckets() {
  return kBuckets;
}

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double seconds) {
  seconds = std::max(seconds, 0.0);
  const auto at = static_cast<std::size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  buckets_[at].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

Metrics::Metrics() {
  for (const char* kind : {"user", "chat"}) {
    sockets.with({kind});
    sockets_opened.with({kind});
  }
  for (const char* kind : {"login", "register", "user", "ws_events", "ws_sockets"})
    throttled.with({kind});
  for (const char* kind : {"reply", "unavailable"}) redis_errors.with({kind});
  for (const char* by : {"background", "writer"}) sqlite_checkpoints.with({by});
}

Metrics& metrics() {
  static Metrics m;
  return m;
}

DbCallMetrics DbCallMetrics::of(const std::string& backend, const std::string& kind) {
  auto& m = metrics();
  return {m.db_seconds.with({backend, kind}), m.db_errors.with({backend, kind})};
}

void set_node_name(std::string name) {
  std::lock_guard lock(node_mutex);
  node_name = std::move(name);
}

std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render() {
  const Metrics& m = metrics();
  std::string node;
  {
    std::lock_guard lock(node_mutex);
    node = "node=\"" + escape_label(node_name) + '"';
  }
  Writer w;
  w.header("chatd_node_info", "gauge", "This node's name (host:port) and version.");
  w.sample("chatd_node_info{" + node + ",version=\"" CHATD_VERSION "\"}", "1");
  w.counter("chatd_connections_accepted_total", "TCP connections accepted.",
            m.connections_accepted);
  w.gauge("chatd_connections_open", "TCP connections open now (HTTP and WebSocket).",
          m.connections_open.value());
  w.gauges("chatd_ws_sockets",
           "WebSockets open on this node, by kind (user: /ws/, chat: /ws/chat/).", m.sockets, node);
  w.counters("chatd_ws_sockets_opened_total", "WebSockets opened, by kind.", m.sockets_opened);
  w.counters("chatd_ws_sockets_closed_total",
             "WebSockets closed, by kind and close code (0: the connection ended without one; "
             "other: a client's own code from 3000-4999).",
             m.sockets_closed);
  w.counter("chatd_ws_frames_received_total", "Data frames received from clients.",
            m.socket_frames_received);
  w.counter("chatd_messages_sent_total", "Messages committed by this node (sent or forwarded).",
            m.messages_sent);
  w.counter("chatd_deliveries_total",
            "Event frames handed to this node's sockets (one a socket already closing drops is "
            "counted too).",
            m.deliveries);
  w.histogram("chatd_event_log_lag_seconds",
              "Time from an event's commit to this node's hub (through the broker).",
              m.event_log_lag);
  w.gauge("chatd_event_log_seq", "The newest event-log seq this node's hub has seen.",
          m.event_log_seq.value());
  w.histograms("chatd_http_request_duration_seconds",
               "HTTP request latency, from the end of the request to the end of the response, "
               "by method and route pattern.",
               m.request_seconds);
  w.counters("chatd_http_requests_total", "HTTP requests answered, by method, route and status.",
             m.requests);
  w.histograms("chatd_db_query_duration_seconds",
               "Database calls as the caller waits for them, by backend and kind.", m.db_seconds);
  w.counters("chatd_db_errors_total", "Database calls that failed, by backend and kind.",
             m.db_errors);
  w.counters("chatd_db_retries_total",
             "PostgreSQL transactions rolled back and run again, by reason (deadlock, "
             "serialization, stale_plan).",
             m.db_retries);
  w.counter("chatd_sqlite_commits_total",
            "Transactions the SQLite writer committed (each a group of one or more writes).",
            m.sqlite_commits);
  w.counter("chatd_sqlite_group_redos_total",
            "Group transactions rolled back and run again write by write, each in a savepoint, "
            "because one write undid rows it had changed.",
            m.sqlite_group_redos);
  w.counters("chatd_sqlite_checkpoints_total",
             "SQLite WAL checkpoints, by who ran them (background: the checkpoint thread; "
             "writer: the writer itself, when the WAL outgrew the background ones).",
             m.sqlite_checkpoints);
  w.histogram("chatd_redis_command_duration_seconds",
              "Redis commands as the caller waits for them.", m.redis_seconds);
  w.counters("chatd_redis_errors_total",
             "Redis commands that failed (reply: an error reply; unavailable: no connection).",
             m.redis_errors);
  w.gauge("chatd_redis_connected", "1 while the Redis command connection is up.",
          m.redis_connected.value());
  w.gauge("chatd_broker_held_events",
          "Live events the Redis broker holds back while it catches up from the event log.",
          m.broker_held_events.value());
  w.counter("chatd_broker_held_dropped_total",
            "Held events dropped past REDIS_MAX_HELD_EVENTS, to be read from the log again.",
            m.broker_held_dropped);
  w.counters("chatd_throttled_total",
             "Requests and sockets refused for going too fast, by limit (login: logins and "
             "password confirmations; register; ws_events; ws_sockets).",
             m.throttled);
  process_metrics(w);
  return w.take();
}

}  // namespace chat::metrics
