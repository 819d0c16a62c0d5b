#include "http/form_body.hpp"

#include <boost/json/array.hpp>
#include "common/unicode.hpp"
#include "http/message.hpp"
#include "http/query_string.hpp"

namespace chat::http {
namespace json = boost::json;

namespace {

// A QueryDict being filled: the last value under the key, every value beside it.
class FormBuilder {
 public:
  FormBuilder() { out_[FormValues::key("")] = true; }

  void add(const std::string& key, json::value value) {
    json::value& all = out_[FormValues::key(key)];
    if (!all.is_array()) all = json::array();
    all.as_array().push_back(value);
    out_[key] = std::move(value);
  }

  json::object take() { return std::move(out_); }

 private:
  json::object out_;
};

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of parameter `name` in a header value such as `form-data; name="text"` or
// `multipart/form-data; boundary=xyz`: quoted (backslash escapes undone) or a bare token.
std::optional<std::string> header_param(std::string_view value, std::string_view name) {
  std::size_t pos = value.find(';');
  while (pos != std::string_view::npos) {
    std::string_view rest = trim_spaces(value.substr(pos + 1));
    const auto eq = rest.find('=');
    const auto semi = rest.find(';');
    if (eq != std::string_view::npos && (semi == std::string_view::npos || eq < semi) &&
        iequals(trim_spaces(rest.substr(0, eq)), name)) {
      std::string_view v = trim_spaces(rest.substr(eq + 1));
      if (!v.empty() && v.front() == '"') {
        std::string out;
        for (std::size_t i = 1; i < v.size(); ++i) {
          if (v[i] == '\\' && i + 1 < v.size()) {
            out += v[++i];
          } else if (v[i] == '"') {
            return out;
          } else {
            out += v[i];
          }
        }
        return std::nullopt;  // no closing quote
      }
      return std::string(trim_spaces(v.substr(0, v.find(';'))));
    }
    pos = value.find(';', pos + 1);
  }
  return std::nullopt;
}

Error multipart_error(const std::string& why) {
  return Error::bad_request("Multipart form parse error - " + why);
}

}  // namespace

Result<json::object> parse_urlencoded_form(std::string_view body) {
  FormBuilder form;
  for (auto& [key, value] : parse_query_pairs(body)) form.add(key, json::value(value));
  return form.take();
}

Result<json::object> parse_multipart_form(std::string_view body, std::string_view content_type) {
  // Django's messages where it has one (a missing boundary), plain words otherwise; Django
  // is more forgiving of a body cut short, taking the parts it could read.
  const auto boundary = header_param(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 200) {
    return multipart_error("Invalid boundary in multipart: " +
                           (boundary ? *boundary : std::string("None")));
  }
  const std::string delimiter = "--" + *boundary;
  const std::string next_delimiter = "\r\n" + delimiter;
  FormBuilder form;
  std::size_t pos = body.find(delimiter);  // a preamble before it is ignored
  if (pos == std::string_view::npos) return multipart_error("no part starts with the boundary");
  pos += delimiter.size();
  for (;;) {
    if (body.substr(pos, 2) == "--") break;  // the closing delimiter
    if (body.substr(pos, 2) != "\r\n") return multipart_error("a boundary is not followed by CRLF");
    pos += 2;
    const auto headers_end = body.find("\r\n\r\n", pos);
    const auto part_end = body.find(next_delimiter, pos);
    if (part_end == std::string_view::npos) return multipart_error("a part does not end");
    std::string_view headers;
    std::string_view content;
    if (headers_end != std::string_view::npos && headers_end < part_end) {
      headers = body.substr(pos, headers_end - pos);
      content = body.substr(headers_end + 4, part_end - headers_end - 4);
    } else if (body.substr(pos, 2) == "\r\n") {
      content = body.substr(pos + 2, part_end - pos - 2);  // a part with no headers
    } else {
      return multipart_error("a part's headers do not end");
    }
    pos = part_end + next_delimiter.size();

    std::optional<std::string> name;
    bool file = false;
    while (!headers.empty()) {
      const auto eol = headers.find("\r\n");
      const std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 2);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos ||
          !iequals(trim_spaces(line.substr(0, colon)), "content-disposition")) {
        continue;
      }
      const std::string_view value = line.substr(colon + 1);
      name = header_param(value, "name");
      file = header_param(value, "filename").has_value();
    }
    if (!name) continue;  // Django skips a part without a name
    if (!unicode::is_valid_utf8(*name)) return multipart_error("a name is not valid UTF-8");
    if (file) {
      form.add(*name, json::object{});
    } else {
      if (!unicode::is_valid_utf8(content)) return multipart_error("a value is not valid UTF-8");
      form.add(*name, json::value(json::string(content)));
    }
  }
  return form.take();
}

}  // namespace chat::http
