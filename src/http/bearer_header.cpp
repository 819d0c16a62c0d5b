#include "http/bearer_header.hpp"

namespace chat::http {
namespace {

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

BearerHeader read_bearer_header(std::string_view header) {
  // Every authenticated request comes through here: the first two parts are kept and the
  // rest only counted, with no allocation.
  std::string_view first;
  std::string_view second;
  std::size_t parts = 0;
  for (std::size_t i = 0; i < header.size();) {
    while (i < header.size() && is_ascii_space(header[i])) ++i;
    const std::size_t start = i;
    while (i < header.size() && !is_ascii_space(header[i])) ++i;
    if (i == start) continue;
    const std::string_view part = header.substr(start, i - start);
    if (++parts == 1) first = part;
    if (parts == 2) second = part;
  }
  // Another scheme (Basic, ...) is not ours: as if no credentials were given.
  if (parts == 0 || first != "Bearer") return {};
  if (parts != 2) return {BearerHeader::Kind::malformed, {}};
  return {BearerHeader::Kind::token, second};
}

Error malformed_bearer_header() {
  return Error::unauthenticated("Authorization header must contain two space-delimited values",
                                "bad_authorization_header");
}

}  // namespace chat::http
