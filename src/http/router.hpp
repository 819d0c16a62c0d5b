// Maps (method, path) to a handler. Patterns are written as API.md writes them
// ("/api/users/{id}/"); `{name}` matches digits (0 too) up to a 64-bit integer, as Django's
// <int:pk> does.
// A path is matched with or without its trailing slash.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "http/message.hpp"

namespace chat::http {

struct RouteParams {
  std::vector<std::int64_t> ids;  // the {name} segments, in order
};

using Handler = std::function<boost::asio::awaitable<Response>(Request&, const RouteParams&)>;
// The refusal a caller without valid credentials gets (401), or nothing for one with them.
using Guard = std::function<boost::asio::awaitable<std::optional<Response>>(Request&)>;

// A handler for authenticated callers only, with its check on its own. DRF authenticates
// before it looks at the method, so on a path with a guarded route a method the path does
// not serve (and OPTIONS) is 401 to a caller without valid credentials, and 405 (or the
// OPTIONS answer) only to one with them.
struct GuardedHandler {
  Handler handler;
  Guard guard;
};

class Router {
 public:
  struct Match {
    const Handler* handler = nullptr;  // null: no route for this method
    RouteParams params;
    bool path_found = false;       // some method matches this path
    std::vector<Method> allowed;   // methods this path answers (for 405 and OPTIONS)
    std::string pattern;           // for logs and metrics
    const Guard* guard = nullptr;  // the path's guard, when a route on it has one
  };

  void add(Method method, std::string pattern, Handler handler);
  void add(Method method, std::string pattern, GuardedHandler guarded);
  [[nodiscard]] Match match(Method method, std::string_view path) const;
  // Every pattern with its methods, for checking the schema against the routes.
  [[nodiscard]] std::vector<std::pair<std::string, Method>> routes() const;

 private:
  struct Route {
    Method method;
    std::string pattern;
    std::vector<std::string> segments;  // "{}" for an id
    Handler handler;
    Guard guard;  // empty: an open route
  };
  std::vector<Route> routes_;
};

}  // namespace chat::http
