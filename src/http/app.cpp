#include "http/app.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "auth/password_hasher.hpp"
#include "common/log_throttle.hpp"
#include "http/drf.hpp"
#include "http/host_check.hpp"
#include "http/static_files.hpp"
#include "store/store.hpp"

namespace chat::http {
namespace {

// In the order of Django's http_method_names (get, post, put, patch, delete), which the
// Method enum follows, whatever order the routes were added in; then HEAD and OPTIONS.
std::string allow_header(std::vector<Method> methods) {
  std::sort(methods.begin(), methods.end());
  methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
  std::string out;
  bool get = false;
  for (Method m : methods) {
    if (!out.empty()) out += ", ";
    out += method_name(m);
    get = get || m == Method::get;
  }
  if (get) out += ", HEAD";
  return out + ", OPTIONS";
}

// Probes from load balancers and orchestrators, and Prometheus, often name the node by
// address.
bool exempt_from_host_check(std::string_view path) {
  return path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/healthz/" ||
         path == "/readyz/" || path == "/metrics/";
}

// A request answered 503: the first of a run, then at most one line a period saying how
// many more there were (every request fails while the cause lasts, and each already has
// its access line). Each cause has a throttle of its own.
void log_503(LogThrottle& throttle, std::string_view cause, std::string_view during,
             const std::exception& e) {
  const auto skipped = throttle.admit();
  if (!skipped) return;
  if (*skipped == 0) {
    spdlog::error("{} during {}: {}", cause, during, e.what());
  } else {
    spdlog::error("{} during {}: {} ({} more requests answered 503 since)", cause, during, e.what(),
                  *skipped);
  }
}

}  // namespace

std::optional<Response> HttpApp::host_refusal(const Request& req) const {
  if (exempt_from_host_check(req.path) || host_allowed(req.header("host"), allowed_hosts_)) {
    return std::nullopt;
  }
  const std::string host = header_text(req.header("host").substr(0, 100));
  return error_response(Error::bad_request("Invalid HTTP_HOST header: '" + host +
                                           "'. You may need to add it to ALLOWED_HOSTS."));
}

boost::asio::awaitable<Response> HttpApp::handle(Request& req, std::string& route) const {
  if (auto refused = host_refusal(req)) co_return std::move(*refused);
  if (static_files_ != nullptr) {
    if (auto file = static_files_->serve(req)) {
      route = "static";
      co_return std::move(*file);
    }
  }
  auto match = router_.match(req.method, req.path);
  route = match.pattern;
  if (!match.path_found) co_return error_response(Error::not_found());
  if (match.handler == nullptr) {
    if (match.guard != nullptr) {
      if (auto refused = co_await (*match.guard)(req)) co_return std::move(*refused);
    }
    const std::string allow = allow_header(match.allowed);
    Response r;
    if (req.method == Method::options) {
      r = json_response(200, boost::json::object{
                                 {"name", match.pattern},
                                 {"renders", boost::json::array{"application/json"}},
                                 {"parses", boost::json::array{"application/json",
                                                               "application/x-www-form-urlencoded",
                                                               "multipart/form-data"}}});
    } else {
      r = json_response(
          405, boost::json::object{{"detail", "Method \"" + req.method_text + "\" not allowed."}});
    }
    r.headers.emplace_back("Allow", allow);
    co_return r;
  }
  try {
    co_return co_await (*match.handler)(req, match.params);
  } catch (const store::Unavailable& e) {
    log_unavailable(req.method_text + " " + route, e);
    co_return error_response(Error::unavailable());
  } catch (const auth::HashMemoryUnavailable& e) {
    static LogThrottle throttle(std::chrono::seconds(10));
    log_503(throttle, "no memory for a password hash", req.method_text + " " + route, e);
    co_return error_response(Error::unavailable());
  } catch (const std::exception& e) {
    spdlog::error("unhandled error during {} {}: {}", req.method_text, route, e.what());
    co_return json_response(500, boost::json::object{{"detail", "A server error occurred."}});
  }
}

void HttpApp::log_unavailable(std::string_view during, const std::exception& e) {
  static LogThrottle throttle(std::chrono::seconds(10));
  log_503(throttle, "database unavailable", during, e);
}

}  // namespace chat::http
