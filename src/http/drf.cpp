#include "http/drf.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <map>

#include "common/python_number.hpp"
#include "common/unicode.hpp"
#include "http/form_body.hpp"

namespace chat::http {
namespace {

namespace json = boost::json;

// Python's name for the type of a JSON value, as DRF's messages show it.
const char* python_type(const json::value& v) {
  switch (v.kind()) {
    case json::kind::array:
      return "list";
    case json::kind::string:
      return "str";
    case json::kind::int64:
    case json::kind::uint64:
      return "int";
    case json::kind::double_:
      return "float";
    case json::kind::bool_:
      return "bool";
    case json::kind::null:
      return "NoneType";
    case json::kind::object:
      return "dict";
  }
  return "object";
}

// Python's repr() of a str: single quotes unless it holds one and no double quote, and
// escapes for what str.isprintable() refuses (controls, and the separators and format
// characters a message would otherwise carry invisibly).
void append_python_repr(std::string& out, std::string_view text) {
  const bool dq =
      text.find('\'') != std::string_view::npos && text.find('"') == std::string_view::npos;
  const char quote = dq ? '"' : '\'';
  out += quote;
  for (char32_t cp : unicode::decode(text).value_or(std::vector<char32_t>{})) {
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 ||
               (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
               (cp >= 0x205F && cp <= 0x2064) || cp == 0x3000 || cp == 0xFEFF) {
      char buf[12];
      const int n = cp <= 0xFF
                        ? std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp))
                        : std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      out.append(buf, static_cast<std::size_t>(n));
    } else {
      unicode::append_utf8(out, cp);
    }
  }
  out += quote;
}

// Python's str() of the value json.loads gives for `v` (repr() inside lists and dicts):
// how DRF's ChoiceField quotes a value it cannot find among its choices.
void append_python_str(std::string& out, const json::value& v, bool nested) {
  switch (v.kind()) {
    case json::kind::string:
      if (nested) {
        append_python_repr(out, v.get_string());
      } else {
        out += v.get_string();
      }
      return;
    case json::kind::int64:
      out += std::to_string(v.get_int64());
      return;
    case json::kind::uint64:
      out += std::to_string(v.get_uint64());
      return;
    case json::kind::double_:
      out += python_float(v.get_double());
      return;
    case json::kind::bool_:
      out += v.get_bool() ? "True" : "False";
      return;
    case json::kind::null:
      out += "None";
      return;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ", ";
        first = false;
        append_python_str(out, item, true);
      }
      out += ']';
      return;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out += ", ";
        first = false;
        append_python_repr(out, key);
        out += ": ";
        append_python_str(out, item, true);
      }
      out += '}';
      return;
    }
  }
}

std::string_view media_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  auto t = content_type.substr(0, semi);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  return t;
}

}  // namespace

Result<json::object> parse_body(const Request& req) {
  const auto type = media_type(req.header("content-type"));
  if (req.body.empty() && (type.empty() || iequals(type, "application/json"))) {
    return json::object{};
  }
  if (iequals(type, "multipart/form-data")) {
    return parse_multipart_form(req.body, req.header("content-type"));
  }
  if (iequals(type, "application/x-www-form-urlencoded")) {
    // `curl -d '{...}'` sends JSON labelled as a form; read it as the JSON it is.
    if (req.body.empty() || req.body.front() != '{') return parse_urlencoded_form(req.body);
  } else if (!type.empty() && !iequals(type, "application/json")) {
    Error e =
        Error::bad_request("Unsupported media type \"" + header_text(type) + "\" in request.");
    e.code = "unsupported_media_type";
    return e;
  }
  json::parse_options opts;
  opts.max_depth = 64;
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec, {}, opts);
  if (ec) return Error::bad_request("JSON parse error - " + ec.message());
  if (!v.is_object()) {
    return Error::field(
        "non_field_errors",
        std::string("Invalid data. Expected a dictionary, but got ") + python_type(v) + ".");
  }
  return std::move(v.as_object());
}

const json::value* FieldReader::given(const char* name, bool required, bool allow_null,
                                      bool allow_blank) {
  const json::value* v = body_.if_contains(name);
  if (v == nullptr) {
    if (required) errors_.add(name, "This field is required.");
    return nullptr;
  }
  // DRF's Field.get_value for HTML input: an empty value of a field that may be null or left
  // out is taken as null or as left out (a blank-allowing field keeps its "" instead).
  if (!allow_blank && v->is_string() && v->get_string().empty() && (allow_null || !required) &&
      FormValues::is_form(body_)) {
    return nullptr;
  }
  return v;
}

std::optional<std::string> FieldReader::string(const char* name, CharFieldOptions o) {
  const json::value* v = given(name, o.required, o.allow_null, o.allow_blank);
  if (v == nullptr) return std::nullopt;
  std::string s;
  switch (v->kind()) {
    case json::kind::string:
      s = std::string(v->get_string());
      break;
    case json::kind::int64:
      s = std::to_string(v->get_int64());
      break;
    case json::kind::uint64:
      s = std::to_string(v->get_uint64());
      break;
    case json::kind::double_:
      s = python_float(v->get_double());
      break;
    case json::kind::null:
      if (!o.allow_null) errors_.add(name, "This field may not be null.");
      return std::nullopt;
    default:
      errors_.add(name, "Not a valid string.");
      return std::nullopt;
  }
  if (s.find('\0') != std::string::npos) {
    errors_.add(name, "Null characters are not allowed.");
    return std::nullopt;
  }
  if (o.trim) s = std::string(unicode::trim(s));
  if (s.empty() && !o.allow_blank) {
    errors_.add(name, "This field may not be blank.");
    return std::nullopt;
  }
  if (o.max_length > 0 && unicode::length(s) > o.max_length) {
    errors_.add(name, "Ensure this field has no more than " + std::to_string(o.max_length) +
                          " characters.");
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> FieldReader::choice(const char* name, bool required) {
  const json::value* v = given(name, required);
  if (v == nullptr) return std::nullopt;
  if (v->is_null()) {
    errors_.add(name, "This field may not be null.");
    return std::nullopt;
  }
  std::string text;
  append_python_str(text, *v, false);
  return text;
}

std::optional<bool> FieldReader::boolean(const char* name, bool required) {
  const json::value* v = given(name, required);
  if (v == nullptr) return std::nullopt;
  if (v->is_bool()) return v->get_bool();
  // 1 and 0 are in DRF's sets, and so are 1.0 and 0.0 (equal to them in Python).
  if (v->is_int64() && (v->get_int64() == 0 || v->get_int64() == 1)) return v->get_int64() == 1;
  if (v->is_double() && (v->get_double() == 0.0 || v->get_double() == 1.0)) {
    return v->get_double() == 1.0;
  }
  if (v->is_string()) {
    // DRF's BooleanField.TRUE_VALUES and FALSE_VALUES.
    static constexpr std::array<std::string_view, 14> kTrue{
        "t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "1"};
    static constexpr std::array<std::string_view, 14> kFalse{
        "f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "0"};
    const std::string_view s = v->get_string();
    if (std::find(kTrue.begin(), kTrue.end(), s) != kTrue.end()) return true;
    if (std::find(kFalse.begin(), kFalse.end(), s) != kFalse.end()) return false;
  }
  if (v->is_null()) {
    errors_.add(name, "This field may not be null.");
    return std::nullopt;
  }
  errors_.add(name, "Must be a valid boolean.");
  return std::nullopt;
}

std::optional<std::int64_t> FieldReader::integer(const char* name, bool required) {
  const json::value* v = given(name, required);
  if (v == nullptr) return std::nullopt;
  if (auto value = integer_field(*v)) return value;
  if (v->is_null()) {
    errors_.add(name, "This field may not be null.");
    return std::nullopt;
  }
  errors_.add(name, "A valid integer is required.");
  return std::nullopt;
}

std::optional<std::vector<std::int64_t>> FieldReader::id_list(const char* name, bool required) {
  // From a form: every value the key was given, as DRF's ManyRelatedField reads HTML input
  // (QueryDict.getlist: no key at all is an empty list there, never a missing field).
  const json::value* v = body_.if_contains(FormValues::key(name));
  if (v == nullptr && FormValues::is_form(body_)) return std::vector<std::int64_t>{};
  if (v == nullptr) v = body_.if_contains(name);
  if (v == nullptr) {
    if (required) errors_.add(name, "This field is required.");
    return std::nullopt;
  }
  if (v->is_null()) {  // refused before the list is looked at
    errors_.add(name, "This field may not be null.");
    return std::nullopt;
  }
  if (!v->is_array()) {
    errors_.add(name,
                std::string("Expected a list of items but got type \"") + python_type(*v) + "\".");
    return std::nullopt;
  }
  std::vector<std::int64_t> out;
  for (const auto& item : v->get_array()) {
    // PrimaryKeyRelatedField looks the pk up as given, and Django's int() turns text such
    // as "5" (and a float such as 5.0) into an id as well; an id that cannot exist, null
    // included, is reported as not found. A JSON number with a fraction is refused: Django
    // would cut 1.5 down to 1 and take a member nobody named.
    std::optional<std::int64_t> id;
    if (item.is_int64()) {
      id = item.get_int64();
    } else if (item.is_double() && item.get_double() == std::floor(item.get_double()) &&
               std::fabs(item.get_double()) < 9e15) {
      id = static_cast<std::int64_t>(item.get_double());
    } else if (item.is_uint64() || item.is_null()) {
      id = 0;
    } else if (item.is_string()) {
      id = python_int(item.get_string());
    }
    if (!id) {
      errors_.add(name, std::string("Incorrect type. Expected pk value, received ") +
                            python_type(item) + ".");
      return std::nullopt;
    }
    if (*id <= 0 || *id == INT64_MAX) {
      const std::string shown = item.is_string()   ? std::string(item.get_string())
                                : item.is_null()   ? std::string("None")
                                : item.is_double() ? python_float(item.get_double())
                                                   : json::serialize(item);
      errors_.add(name, "Invalid pk \"" + shown + "\" - object does not exist.");
      return std::nullopt;
    }
    out.push_back(*id);
  }
  return out;
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
  if (s->empty() || ec != std::errc{} || p != s->data() + s->size()) {
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
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) unicode::append_utf8(out, c);
  return out;
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
