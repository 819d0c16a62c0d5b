#include "http/router.hpp"

#include <algorithm>
#include <charconv>

namespace chat::http {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

// Django's <int:pk>: digits only, 0 and leading zeros included (an id 0 names nothing, so
// the view answers 404 after authentication, not the router before it).
bool parse_id(std::string_view s, std::int64_t& out) {
  if (s.empty() || s.size() > 19 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{};
}

}  // namespace

void Router::add(Method method, std::string pattern, GuardedHandler guarded) {
  add(method, std::move(pattern), std::move(guarded.handler));
  routes_.back().guard = std::move(guarded.guard);
}

void Router::add(Method method, std::string pattern, Handler handler) {
  Route r{method, std::move(pattern), {}, std::move(handler), {}};
  for (auto seg : split_path(r.pattern)) {
    r.segments.emplace_back(seg.front() == '{' ? "{}" : std::string(seg));
  }
  routes_.push_back(std::move(r));
}

Router::Match Router::match(Method method, std::string_view path) const {
  Match m;
  // "//x" or a path with empty segments other than the trailing one is not ours.
  if (path.empty() || path.front() != '/' || path.find("//") != std::string_view::npos) return m;
  const auto segments = split_path(path);
  const Method wanted = method == Method::head ? Method::get : method;
  for (const auto& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    RouteParams params;
    bool ok = true;
    for (std::size_t i = 0; i < segments.size() && ok; ++i) {
      if (route.segments[i] == "{}") {
        std::int64_t id = 0;
        ok = parse_id(segments[i], id);
        params.ids.push_back(id);
      } else {
        ok = route.segments[i] == segments[i];
      }
    }
    if (!ok) continue;
    m.path_found = true;
    m.pattern = route.pattern;
    m.allowed.push_back(route.method);
    if (route.guard && m.guard == nullptr) m.guard = &route.guard;
    if (route.method == wanted && m.handler == nullptr) {
      m.handler = &route.handler;
      m.params = std::move(params);
    }
  }
  return m;
}

std::vector<std::pair<std::string, Method>> Router::routes() const {
  std::vector<std::pair<std::string, Method>> out;
  for (const auto& r : routes_) out.emplace_back(r.pattern, r.method);
  return out;
}

}  // namespace chat::http
