// Django's ALLOWED_HOSTS: the Host header must name this server, so a DNS-rebinding page
// or a poisoned link cannot pass for it. Patterns: "*", ".example.com" (the domain and
// its subdomains), or an exact name. The port is ignored.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::http {

// The host part (lower-cased, no port) of a syntactically valid Host header.
std::optional<std::string> host_without_port(std::string_view host_header);
bool host_allowed(std::string_view host_header, const std::vector<std::string>& allowed);

}  // namespace chat::http
