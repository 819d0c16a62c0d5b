#include "http/message.hpp"

#include <algorithm>
#include <cctype>

namespace chat::http {

Method parse_method(std::string_view name) {
  if (name == "GET") return Method::get;
  if (name == "HEAD") return Method::head;
  if (name == "POST") return Method::post;
  if (name == "PUT") return Method::put;
  if (name == "PATCH") return Method::patch;
  if (name == "DELETE") return Method::del;
  if (name == "OPTIONS") return Method::options;
  return Method::other;
}

const char* method_name(Method m) {
  switch (m) {
    case Method::get:
      return "GET";
    case Method::head:
      return "HEAD";
    case Method::post:
      return "POST";
    case Method::put:
      return "PUT";
    case Method::patch:
      return "PATCH";
    case Method::del:
      return "DELETE";
    case Method::options:
      return "OPTIONS";
    case Method::other:
      break;
  }
  return "OTHER";
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

std::string Request::header_joined(std::string_view name) const {
  std::string out;
  bool first = true;
  for (const auto& [k, v] : headers) {
    if (k != name) continue;
    if (!first) out += ',';
    out += v;
    first = false;
  }
  return out;
}

const std::string* Request::query_param(std::string_view name) const {
  const std::string* last = nullptr;
  for (const auto& [k, v] : query) {
    if (k == name) last = &v;
  }
  return last;
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::empty(int status) {
  Response r;
  r.status = status;
  r.content_type.clear();
  return r;
}

}  // namespace chat::http
