#include "http/handlers/bearer.hpp"

#include "auth/auth_service.hpp"
#include "http/bearer_header.hpp"

namespace chat::http {

boost::asio::awaitable<Result<auth::Authenticated>> authenticate(auth::AuthService& auth,
                                                                 const Request& req) {
  const std::string authorization = req.header_joined("authorization");
  const BearerHeader bearer = read_bearer_header(authorization);
  switch (bearer.kind) {
    case BearerHeader::Kind::none:
      co_return Error::unauthenticated("Authentication credentials were not provided.");
    case BearerHeader::Kind::malformed:
      co_return malformed_bearer_header();
    case BearerHeader::Kind::token:
      break;
  }
  co_return co_await auth.authenticate_session(std::string(bearer.token));
}

}  // namespace chat::http
