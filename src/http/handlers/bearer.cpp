#include "http/handlers/bearer.hpp"

#include "auth/auth_service.hpp"

namespace chat::http {

boost::asio::awaitable<Result<auth::Authenticated>> authenticate(auth::AuthService& auth,
                                                                 const Request& req) {
  std::string_view header = req.header("authorization");
  // Another scheme (Basic, ...) is not ours: as if no credentials were given.
  if (header.empty() || !(header.substr(0, 7) == "Bearer " || header == "Bearer")) {
    co_return Error::unauthenticated("Authentication credentials were not provided.");
  }
  std::string_view token = header.substr(std::min<std::size_t>(7, header.size()));
  if (token.empty() || token.find(' ') != std::string_view::npos) {
    co_return Error::unauthenticated("Authorization header must contain two space-delimited values",
                                     "bad_authorization_header");
  }
  co_return co_await auth.authenticate_session(std::string(token));
}

}  // namespace chat::http
