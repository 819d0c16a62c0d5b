#include "http/request_reader.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>

#include "common/unicode.hpp"

namespace chat::http {
namespace {

// Text that can be stored and compared: valid UTF-8 without NUL (which PostgreSQL cannot
// hold in text and would otherwise cut a value short).
bool acceptable_text(const std::string& s) {
  return unicode::is_valid_utf8(s) && s.find('\0') == std::string::npos;
}

bool parse_target(std::string_view target, Request& req) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return false;
  req.path = url->path();
  if (!acceptable_text(req.path)) return false;
  // The query as Django's QueryDict decodes it: bytes that are not UTF-8 are replaced, and
  // a NUL stays in its value (the readers of text parameters refuse it, as DRF's
  // SearchFilter does; a number with one in it is not a number).
  for (auto p : url->params()) {
    req.query.emplace_back(unicode::replace_invalid(p.key), unicode::replace_invalid(p.value));
  }
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
