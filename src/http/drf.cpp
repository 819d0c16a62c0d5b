#include "http/drf.hpp"

#include <boost/json/serialize.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <charconv>
#include <map>

#include "common/json_input.hpp"
#include "common/python_number.hpp"
#include "common/unicode.hpp"
#include "http/form_body.hpp"

namespace chat::http {
namespace {

namespace json = boost::json;

std::string_view media_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  auto t = content_type.substr(0, semi);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  return t;
}

}  // namespace

Result<json::object> parse_body(const Request& req) {
  const auto type = media_type(req.header("content-type"));
  const bool multipart = iequals(type, "multipart/form-data");
  const bool urlencoded = iequals(type, "application/x-www-form-urlencoded");
  // An empty body is no data whatever its type, as DRF reads one (it chooses no parser, so
  // there is no 415): an empty QueryDict for a form, else an empty dict.
  if (req.body.empty()) return multipart || urlencoded ? parse_urlencoded_form("") : json::object{};
  if (multipart) return parse_multipart_form(req.body, req.header("content-type"));
  if (urlencoded) {
    // `curl -d '{...}'` sends JSON labelled as a form; read it as the JSON it is.
    if (req.body.front() != '{') return parse_urlencoded_form(req.body);
  } else if (!type.empty() && !iequals(type, "application/json")) {
    // DRF names the header as sent, parameters and all.
    Error e = Error::bad_request("Unsupported media type \"" +
                                 header_text(req.header("content-type")) + "\" in request.");
    e.code = "unsupported_media_type";
    return e;
  }
  boost::system::error_code ec;
  json::value v = parse_client_json(req.body, 64, ec);
  if (ec) return Error::bad_request("JSON parse error - " + ec.message());
  // DRF's Serializer.errors words a null body so ("may not be null" would name no field).
  if (v.is_null()) return Error::field("non_field_errors", "No data provided");
  if (!v.is_object()) {
    return Error::field(
        "non_field_errors",
        std::string("Invalid data. Expected a dictionary, but got ") + python_type(v) + ".");
  }
  return std::move(v.as_object());
}

std::optional<std::string> query_text(const Request& req, const char* name, FieldErrors& errors) {
  const std::string* s = req.query_param(name);
  if (s == nullptr) return std::nullopt;
  if (s->find('\0') != std::string::npos) {
    errors.add(name, "Null characters are not allowed.");
    return std::nullopt;
  }
  return *s;
}

std::optional<std::int64_t> query_integer(const Request& req, const char* name, FieldErrors& errors,
                                          std::int64_t min, std::int64_t max) {
  const std::string* s = req.query_param(name);
  // An empty value filters nothing, as django-filter (EMPTY_VALUES) and a view's
  // `if before:` read it: a client may send `before=` on its first page.
  if (s == nullptr || s->empty()) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc{} || p != s->data() + s->size()) {
    errors.add(name, "A valid integer is required.");
    return std::nullopt;
  }
  if (v < min) {
    errors.add(name, "Ensure this value is greater than or equal to " + std::to_string(min) + ".");
    return std::nullopt;
  }
  if (v > max) {
    errors.add(name, "Ensure this value is less than or equal to " + std::to_string(max) + ".");
    return std::nullopt;
  }
  return v;
}

std::int64_t query_int(const Request& req, const char* name, std::int64_t fallback,
                       std::int64_t min, std::int64_t max) {
  const std::string* s = req.query_param(name);
  if (s == nullptr) return fallback;
  const auto v = python_int(*s);
  if (!v || *v < min) return fallback;
  return std::min(*v, max);
}

std::string header_text(std::string_view value) {
  return unicode::from_latin1(value);
}

std::string to_json(const json::value& v) {
  return json::serialize(v);
}

Response json_response(int status, const json::value& v) {
  return Response::json(status, to_json(v));
}

Response error_response(const Error& e) {
  json::object body;
  int status = 400;
  switch (e.kind) {
    case ErrorKind::validation:
      for (const auto& [field, messages] : e.fields.items()) {
        json::array arr;
        for (const auto& m : messages) arr.emplace_back(m);
        body[field] = std::move(arr);
      }
      return json_response(400, body);
    case ErrorKind::bad_request:
      status = e.code == "unsupported_media_type" ? 415 : 400;
      break;
    case ErrorKind::unauthenticated:
      status = 401;
      break;
    case ErrorKind::forbidden:
      status = 403;
      break;
    case ErrorKind::not_found:
      status = 404;
      break;
    case ErrorKind::throttled:
      status = 429;
      break;
    case ErrorKind::unavailable:
      status = 503;
      break;
  }
  body["detail"] = e.detail;
  if (!e.code.empty() && status != 415) body["code"] = e.code;
  if (!e.token_message.empty()) {
    body["messages"] = json::array{json::object{
        {"token_class", "AccessToken"}, {"token_type", "access"}, {"message", e.token_message}}};
  }
  Response r = json_response(status, body);
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"api\"");
  if (status == 429) r.headers.emplace_back("Retry-After", std::to_string(e.retry_after));
  return r;
}

namespace {

// Python's urllib.parse.quote_plus: letters, digits and "_.-~" as they are, a space as
// "+", every other byte as %XX.
std::string quote_plus(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (alnum || c == '_' || c == '.' || c == '-' || c == '~') {  // ASCII, whatever the locale
      out += ch;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

// This request's URL with limit and offset set (no offset: removed), as DRF's
// replace_query_param and remove_query_param write it: every other parameter kept, the
// parameters sorted by name, each value quote_plus'ed.
json::value page_link(const Request& req, const PageRequest& page,
                      std::optional<std::int64_t> offset) {
  std::map<std::string, std::vector<std::string>> params;
  for (const auto& [key, value] : req.query) params[key].push_back(value);
  params["limit"] = {std::to_string(page.limit)};
  if (offset) {
    params["offset"] = {std::to_string(*offset)};
  } else {
    params.erase("offset");
  }
  std::string query;
  for (const auto& [key, values] : params) {
    for (const auto& value : values) {
      if (!query.empty()) query += '&';
      query += quote_plus(key);
      query += '=';
      query += quote_plus(value);
    }
  }
  boost::urls::url url;
  url.set_scheme("http");
  url.set_encoded_authority(req.header("host"));
  url.set_path(req.path);
  url.set_encoded_query(query);
  return json::value(url.buffer());
}

}  // namespace

json::object limit_offset_page(const Request& req, const PageRequest& page, std::int64_t count,
                               json::array results) {
  json::value next = nullptr;
  json::value previous = nullptr;
  if (page.offset + page.limit < count) next = page_link(req, page, page.offset + page.limit);
  if (page.offset > 0) {
    const std::int64_t back = page.offset - page.limit;
    previous = page_link(req, page, back > 0 ? std::optional<std::int64_t>(back) : std::nullopt);
  }
  return json::object{{"count", count},
                      {"next", std::move(next)},
                      {"previous", std::move(previous)},
                      {"results", std::move(results)}};
}

}  // namespace chat::http
