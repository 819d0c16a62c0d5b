// Authentication of a REST request by its Authorization: Bearer header.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "common/result.hpp"
#include "http/message.hpp"
#include "store/user_store.hpp"

#include "auth/auth_service.hpp"

namespace chat::http {

boost::asio::awaitable<Result<auth::Authenticated>> authenticate(auth::AuthService& auth,
                                                                 const Request& req);

}  // namespace chat::http
