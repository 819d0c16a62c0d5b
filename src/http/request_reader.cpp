#include "http/request_reader.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <optional>

#include "common/unicode.hpp"
#include "http/query_string.hpp"

namespace chat::http {
namespace {

// Text that can be stored and compared: valid UTF-8 without NUL (which PostgreSQL cannot
// hold in text and would otherwise cut a value short).
bool acceptable_text(const std::string& s) {
  return unicode::is_valid_utf8(s) && s.find('\0') == std::string::npos;
}

// The origin form ("/path?query"), or the absolute form ("http://host/path?query"), which
// RFC 9112 (3.2.2) has a server accept too: its path and query are read the same way. The
// host check still reads the Host header, which a client sends with either form.
std::optional<boost::urls::url_view> parse_request_target(std::string_view target) {
  auto url = target.starts_with('/') ? boost::urls::parse_origin_form(target)
                                     : boost::urls::parse_absolute_uri(target);
  if (!url) return std::nullopt;
  if (!target.starts_with('/') &&
      ((url->scheme_id() != boost::urls::scheme::http &&
        url->scheme_id() != boost::urls::scheme::https) ||
       url->has_userinfo())) {  // RFC 9110 (4.2.4): user information in it is an error
    return std::nullopt;
  }
  return *url;
}

bool parse_target(std::string_view target, Request& req) {
  const std::string escaped = escape_lenient_target(target);
  auto url = parse_request_target(escaped);
  if (!url) return false;
  req.path = url->path();
  if (req.path.empty()) req.path.push_back('/');  // "http://host" names the root
  if (!acceptable_text(req.path)) return false;
  // The query as Django's QueryDict decodes it: bytes that are not UTF-8 are replaced, and
  // a NUL stays in its value (the readers of text parameters refuse it, as DRF's
  // SearchFilter does; a number with one in it is not a number).
  req.query = parse_query_pairs(url->encoded_query());
  return true;
}

}  // namespace

bool read_request(boost::beast::http::request<boost::beast::http::string_body>& msg, Request& req) {
  req.method_text = std::string(msg.method_string());
  req.method = parse_method(req.method_text);
  for (const auto& field : msg) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    req.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  req.body = std::move(msg.body());
  return parse_target(msg.target(), req);
}

}  // namespace chat::http
