#include "http/drf.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"
#include "metrics/metrics.hpp"
#include "store/store.hpp"

namespace chat::http {
namespace {

using boost::asio::awaitable;

awaitable<Response> healthz() {
  co_return json_response(200, boost::json::object{{"status", "ok"}});
}

awaitable<Response> readyz(Services& s) {
  const bool db = co_await s.store.ping();
  const bool broker = !s.broker_ready || s.broker_ready();
  const bool ok = db && broker;
  co_return json_response(ok ? 200 : 503,
                          boost::json::object{{"status", ok ? "ok" : "unavailable"},
                                              {"database", db ? "ok" : "unavailable"},
                                              {"broker", broker ? "ok" : "unavailable"}});
}

// This node's counters for Prometheus (each node is scraped on its own address).
awaitable<Response> metrics_text() {
  Response r;
  r.status = 200;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics::render();
  r.headers.emplace_back("Cache-Control", "no-store");
  co_return r;
}

}  // namespace

void add_health_routes(Router& r, Services& s) {
  r.add(Method::get, "/healthz", [](Request&, const RouteParams&) { return healthz(); });
  r.add(Method::get, "/readyz", [&s](Request&, const RouteParams&) { return readyz(s); });
  r.add(Method::get, "/metrics", [](Request&, const RouteParams&) { return metrics_text(); });
}

void add_all_routes(Router& r, Services& s) {
  add_auth_routes(r, s);
  add_user_routes(r, s);
  add_chat_routes(r, s);
  add_message_routes(r, s);
  add_health_routes(r, s);
  add_doc_routes(r, s);
  add_admin_routes(r, s);
}

}  // namespace chat::http
