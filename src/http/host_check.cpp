#include "http/host_check.hpp"

#include <boost/url/ipv6_address.hpp>

#include <algorithm>
#include <cctype>

namespace chat::http {

std::optional<std::string> host_without_port(std::string_view h) {
  std::string host(h);
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view name = host;
  std::string_view port;
  if (!name.empty() && name.front() == '[') {  // [v6]:port
    const auto close = name.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    port = name.substr(close + 1);
    name = name.substr(0, close + 1);
    // An IPv6 address, not just its characters: "[:]" passed with ALLOWED_HOSTS=* and then
    // made building a page link (boost::urls) throw, a 500 instead of this 400.
    if (!boost::urls::parse_ipv6_address(name.substr(1, name.size() - 2))) return std::nullopt;
  } else {
    const auto colon = name.rfind(':');
    if (colon != std::string_view::npos) {
      port = name.substr(colon);
      name = name.substr(0, colon);
    }
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
        })) {
      return std::nullopt;
    }
  }
  if (!port.empty()) {
    if (port.size() < 2 || port.front() != ':' ||
        !std::all_of(port.begin() + 1, port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
  }
  std::string out(name);
  if (out.size() > 1 && out.back() == '.') out.pop_back();  // "example.com." is example.com
  return out;
}

bool host_allowed(std::string_view host_header, const std::vector<std::string>& allowed) {
  const auto host = host_without_port(host_header);
  if (!host) return false;
  for (const auto& raw : allowed) {
    std::string pattern(raw);
    std::transform(pattern.begin(), pattern.end(), pattern.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (pattern == "*") return true;
    if (pattern.size() > 1 && pattern.front() == '.') {
      if (*host == pattern.substr(1)) return true;
      if (host->size() > pattern.size() && host->ends_with(pattern)) return true;
    } else if (*host == pattern) {
      return true;
    }
  }
  return false;
}

}  // namespace chat::http
