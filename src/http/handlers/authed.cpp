#include "http/handlers/authed.hpp"

#include "auth/request_throttle.hpp"
#include "http/drf.hpp"
#include "http/handlers/bearer.hpp"

namespace chat::http {

using boost::asio::awaitable;

namespace {

Guard guard_of(Services& s) {
  return [&s](Request& req) -> awaitable<std::optional<Response>> {
    auto me = co_await authenticate(s.auth, req);
    if (!me) co_return error_response(me.error());
    co_return std::nullopt;
  };
}

// The caller, authenticated and then throttled as DRF's view does (authentication,
// permission, throttle, then the body and the handler). The guard does not count: it only
// decides between 401 and 405.
awaitable<Result<auth::Authenticated>> caller(Services& s, Request& req) {
  auto who = co_await authenticate(s.auth, req);
  if (!who) co_return std::move(who.error());
  if (auto admitted = co_await s.throttle.admit(who->user.id); !admitted) {
    co_return std::move(admitted.error());
  }
  req.session = who->session;
  co_return std::move(*who);
}

}  // namespace

GuardedHandler authed(Services& s, AuthedFn fn) {
  Handler handler = [&s, fn](Request& req, const RouteParams& p) -> awaitable<Response> {
    auto who = co_await caller(s, req);
    if (!who) co_return error_response(who.error());
    co_return co_await fn(s, req, p, who->user);
  };
  return {std::move(handler), guard_of(s)};
}

namespace {

// authed_body() or, with `after_lookup`, authed_body_after_lookup().
GuardedHandler with_body(Services& s, AuthedBodyFn fn, bool after_lookup) {
  Handler handler = [&s, fn, after_lookup](Request& req,
                                           const RouteParams& p) -> awaitable<Response> {
    auto who = co_await caller(s, req);
    if (!who) co_return error_response(who.error());
    auto body = parse_body(req);
    if (body) co_return co_await fn(s, req, p, who->user, *body);
    if (!after_lookup) co_return error_response(body.error());
    Error e = std::move(body.error());
    if (e.kind == ErrorKind::validation) {  // JSON, but not an object
      req.body_errors = std::move(e.fields);
      req.body_errors.seal();
    } else {  // not JSON, or a media type no parser takes
      req.body_errors.set_unreadable_body(std::move(e.detail), std::move(e.code));
    }
    const boost::json::object nothing;
    co_return co_await fn(s, req, p, who->user, nothing);
  };
  return {std::move(handler), guard_of(s)};
}

}  // namespace

GuardedHandler authed_body(Services& s, AuthedBodyFn fn) {
  return with_body(s, fn, false);
}

GuardedHandler authed_body_after_lookup(Services& s, AuthedBodyFn fn) {
  return with_body(s, fn, true);
}

}  // namespace chat::http
