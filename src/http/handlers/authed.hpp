// Route adapters for endpoints that need the caller (and, for writes, the body): the
// bearer token is checked and the body parsed here once, so handlers only read fields,
// call a service and serialise.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "http/handlers/routes.hpp"
#include "http/router.hpp"
#include "store/user_store.hpp"

namespace chat::http {

using AuthedFn = boost::asio::awaitable<Response> (*)(Services&, Request&, const RouteParams&,
                                                      const store::UserRecord& me);
using AuthedBodyFn = boost::asio::awaitable<Response> (*)(Services&, Request&, const RouteParams&,
                                                          const store::UserRecord& me,
                                                          const boost::json::object& body);

// 401 unless the request carries a valid access token of an active user; the same check
// guards the path's other methods (GuardedHandler).
GuardedHandler authed(Services& s, AuthedFn fn);
// As authed(), then the body parsed the DRF way (400/415 when it cannot be).
GuardedHandler authed_body(Services& s, AuthedBodyFn fn);
// As authed_body() for endpoints on an existing object, whose handlers pass their field
// errors to the service: a body that cannot be read comes to the handler as an empty one
// with the problem in req.body_errors, so that, as in DRF's detail views, a missing object
// (404) or a denied permission (403) answers before it. Such a handler starts its
// FieldErrors from req.body_errors (test_http's unreadable-body test covers each route).
GuardedHandler authed_body_after_lookup(Services& s, AuthedBodyFn fn);

}  // namespace chat::http
