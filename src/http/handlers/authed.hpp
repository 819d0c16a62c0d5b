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

}  // namespace chat::http
