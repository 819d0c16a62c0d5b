#include "http/bearer_header.hpp"

#include <vector>

namespace chat::http {
namespace {

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

BearerHeader read_bearer_header(std::string_view header) {
  std::vector<std::string_view> parts;
  for (std::size_t i = 0; i < header.size();) {
    while (i < header.size() && is_ascii_space(header[i])) ++i;
    const std::size_t start = i;
    while (i < header.size() && !is_ascii_space(header[i])) ++i;
    if (i > start) parts.push_back(header.substr(start, i - start));
  }
  // Another scheme (Basic, ...) is not ours: as if no credentials were given.
  if (parts.empty() || parts.front() != "Bearer") return {};
  if (parts.size() != 2) return {BearerHeader::Kind::malformed, {}};
  return {BearerHeader::Kind::token, parts[1]};
}

Error malformed_bearer_header() {
  return Error::unauthenticated("Authorization header must contain two space-delimited values",
                                "bad_authorization_header");
}

}  // namespace chat::http
