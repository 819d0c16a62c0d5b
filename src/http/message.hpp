// The request and response as handlers see them: plain data, no Beast types, so handler
// files compile without the HTTP parser's headers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.hpp"

namespace chat::http {

// In the order of Django's View.http_method_names, which Allow headers follow.
enum class Method { get, post, put, patch, del, head, options, other };

Method parse_method(std::string_view name);
const char* method_name(Method m);

// ASCII case-insensitive equality, for header names, media types and their parameters.
bool iequals(std::string_view a, std::string_view b);

struct Request {
  Method method = Method::get;
  std::string method_text;  // as sent, for "Method \"X\" not allowed."
  std::string path;         // percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string client_address;  // after trusted-proxy resolution
  std::string request_id;
  std::string session;  // the caller's login session, once authenticated (authed())
  // What reading the body found wrong, for a handler that reports it after its object
  // checks (authed_body_after_lookup); empty otherwise.
  FieldErrors body_errors;

  // First header with this lower-case name, or empty.
  [[nodiscard]] std::string_view header(std::string_view name) const;
  // Every header with this lower-case name, joined with "," as Django's ASGI handler joins
  // a repeated header (so two Authorization headers are one malformed value there and
  // here, not the first one's credentials).
  [[nodiscard]] std::string header_joined(std::string_view name) const;
  // The query parameter with this name; of a repeated one, the last value, as Django's
  // QueryDict.get() answers.
  [[nodiscard]] const std::string* query_param(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;

  static Response json(int status, std::string body);
  static Response empty(int status);
};

}  // namespace chat::http
