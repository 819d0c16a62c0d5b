#include "http/handlers/authed.hpp"

#include "http/drf.hpp"
#include "http/handlers/bearer.hpp"

namespace chat::http {

using boost::asio::awaitable;

Handler authed(Services& s, AuthedFn fn) {
  return [&s, fn](Request& req, const RouteParams& p) -> awaitable<Response> {
    auto me = co_await authenticate(s.auth, req);
    if (!me) co_return error_response(me.error());
    co_return co_await fn(s, req, p, *me);
  };
}

Handler authed_body(Services& s, AuthedBodyFn fn) {
  return [&s, fn](Request& req, const RouteParams& p) -> awaitable<Response> {
    auto me = co_await authenticate(s.auth, req);
    if (!me) co_return error_response(me.error());
    auto body = parse_body(req);
    if (!body) co_return error_response(body.error());
    co_return co_await fn(s, req, p, *me, *body);
  };
}

}  // namespace chat::http
