// Django REST Framework's wire conventions for HTTP, in one place: how request bodies and
// query parameters are read, and how an Error becomes a response ({"detail": ...} or
// {"field": [...]}). Body fields are read by FieldReader (common/serializer_fields.hpp).
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/serializer_fields.hpp"
#include "http/message.hpp"

namespace chat::http {

// The body as a JSON object: application/json, a form (application/x-www-form-urlencoded
// or multipart/form-data: http/form_body.hpp), or an empty body, as DRF's default parsers
// take them. Errors are DRF's: a parse error, 415, or "Expected a dictionary".
Result<boost::json::object> parse_body(const Request& req);

// A text query parameter as DRF's SearchFilter (3.15 and later) reads `search`, through a
// CharField: the value given (the last of a repeated one), untrimmed; one holding a NUL is
// added to `errors` ("Null characters are not allowed."). nullopt when absent or refused.
std::optional<std::string> query_text(const Request& req, const char* name, FieldErrors& errors);

// An integer query parameter as DRF filters read it: nullopt when absent or empty; a bad
// value is added to `errors`.
std::optional<std::int64_t> query_integer(const Request& req, const char* name, FieldErrors& errors,
                                          std::int64_t min = 1, std::int64_t max = INT64_MAX);

// Query parameter as DRF's pagination reads it (Python's int(), then at least `min`, at
// most `max`): a bad value means `fallback`, a larger one `max`.
std::int64_t query_int(const Request& req, const char* name, std::int64_t fallback,
                       std::int64_t min, std::int64_t max);

// DRF's LimitOffsetPagination: {"count", "next", "previous", "results"}, the links being
// this URL with another offset (or null).
struct PageRequest {
  std::string search;  // the search term, if any (the links keep every parameter)
  int limit = 50;
  std::int64_t offset = 0;
};
boost::json::object limit_offset_page(const Request& req, const PageRequest& page,
                                      std::int64_t count, boost::json::array results);

// A header value quoted in a message, read as ISO-8859-1 as WSGI (and so Django) reads
// headers: a byte that is not UTF-8 must not make the JSON answer invalid.
std::string header_text(std::string_view value);

std::string to_json(const boost::json::value& v);
Response json_response(int status, const boost::json::value& v);
Response error_response(const Error& e);

}  // namespace chat::http
