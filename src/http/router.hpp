// Maps (method, path) to a handler. Patterns are written as API.md writes them
// ("/api/users/{id}/"); `{name}` matches a positive 64-bit integer, as Django's <int:pk>.
// A path is matched with or without its trailing slash.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "http/message.hpp"

namespace chat::http {

struct RouteParams {
  std::vector<std::int64_t> ids;  // the {name} segments, in order
};

using Handler = std::function<boost::asio::awaitable<Response>(Request&, const RouteParams&)>;

class Router {
 public:
  struct Match {
    const Handler* handler = nullptr;  // null: no route for this method
    RouteParams params;
    bool path_found = false;      // some method matches this path
    std::vector<Method> allowed;  // methods this path answers (for 405 and OPTIONS)
    std::string pattern;          // for logs and metrics
  };

  void add(Method method, std::string pattern, Handler handler);
  [[nodiscard]] Match match(Method method, std::string_view path) const;
  // Every pattern with its methods, for checking the schema against the routes.
  [[nodiscard]] std::vector<std::pair<std::string, Method>> routes() const;

 private:
  struct Route {
    Method method;
    std::string pattern;
    std::vector<std::string> segments;  // "{}" for an id
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace chat::http
