#include "http/request_log.hpp"

#include <spdlog/spdlog.h>

#include <string>
#include <unordered_map>

#include "common/log_event.hpp"
#include "http/message.hpp"
#include "metrics/metrics.hpp"

namespace chat::http {
namespace {

// Methods outside the known set share one label, so a client cannot make new series.
std::string_view method_label(std::string_view method) {
  const char* name = method_name(parse_method(method));
  return name;
}

// This thread's handles on the metrics of each method and route (and status): the
// labelled families are looked up (under their lock) once per thread and label set, not
// once per request.
struct RouteMetrics {
  metrics::Histogram* seconds = nullptr;
  std::unordered_map<int, metrics::Counter*> by_status;
};

RouteMetrics& route_metrics(std::string_view method, std::string_view route) {
  thread_local std::unordered_map<std::string, RouteMetrics> cache;
  thread_local std::string key;
  key.assign(method);
  key += ' ';
  key += route;
  auto it = cache.find(key);
  if (it == cache.end()) {
    RouteMetrics m;
    m.seconds = &metrics::metrics().request_seconds.with({std::string(method), std::string(route)});
    it = cache.emplace(key, std::move(m)).first;
  }
  return it->second;
}

}  // namespace

const char* socket_route(std::string_view path) {
  return path.starts_with("/ws/chat") ? "/ws/chat/{chat_id}/" : "/ws/";
}

void record_request(const RequestOutcome& r) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - r.started)
                          .count();
  const std::string_view route =
      !r.route.empty() ? r.route : (r.status == 404 ? "unmatched" : "none");
  const std::string_view method = method_label(r.method);
  auto& m = route_metrics(method, route);
  m.seconds->observe_micros(micros);
  auto& counter = m.by_status[r.status];
  if (counter == nullptr) {
    counter = &metrics::metrics().requests.with(
        {std::string(method), std::string(route), std::to_string(r.status)});
  }
  counter->inc();
  // One line per request (nothing is built when info lines are off, as in benchmarks).
  if (!spdlog::should_log(spdlog::level::info)) return;
  if (logs::json()) {
    logs::Event("request")
        .field("request_id", r.request_id)
        .field("client", r.client)
        .field("method", r.method)
        .field("path", r.path)
        .field("route", route)
        .field("status", r.status)
        .field("bytes", static_cast<std::uint64_t>(r.bytes))
        .field("duration_us", static_cast<std::int64_t>(micros))
        .info();
  } else {
    spdlog::info("{} {} {} {} {}B {}us id={}", r.client, logs::text_value(r.method),
                 logs::text_value(r.path), r.status, r.bytes, micros, r.request_id);
  }
}

}  // namespace chat::http
