// The Authorization: Bearer header, as SimpleJWT's JWTAuthentication reads it.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "common/result.hpp"
#include "http/message.hpp"
#include "store/user_store.hpp"

namespace chat::auth {
class AuthService;
}

namespace chat::http {

boost::asio::awaitable<Result<store::UserRecord>> authenticate(auth::AuthService& auth,
                                                               const Request& req);

}  // namespace chat::http
