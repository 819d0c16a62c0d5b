#include "common/error.hpp"

#include <algorithm>
#include <string>

namespace chat {

void FieldErrors::add(std::string field, std::string message) {
  if (sealed_) return;
  auto it = std::find_if(items_.begin(), items_.end(),
                         [&](const auto& item) { return item.first == field; });
  if (it == items_.end()) {
    items_.emplace_back(std::move(field), std::vector<std::string>{std::move(message)});
  } else {
    it->second.push_back(std::move(message));
  }
}

void FieldErrors::set_unreadable_body(std::string detail, std::string code) {
  unreadable_detail_ = std::move(detail);
  unreadable_code_ = std::move(code);
  sealed_ = true;
}

bool FieldErrors::has(std::string_view field) const {
  return std::any_of(items_.begin(), items_.end(),
                     [&](const auto& item) { return item.first == field; });
}

Error Error::validation(FieldErrors fields) {
  if (!fields.unreadable_body().empty()) {
    Error e = bad_request(fields.unreadable_body());
    e.code = fields.unreadable_body_code();
    return e;
  }
  Error e;
  e.kind = ErrorKind::validation;
  e.fields = std::move(fields);
  return e;
}

Error Error::field(std::string name, std::string message) {
  FieldErrors fields;
  fields.add(std::move(name), std::move(message));
  return validation(std::move(fields));
}

Error Error::bad_request(std::string detail) {
  Error e;
  e.kind = ErrorKind::bad_request;
  e.detail = std::move(detail);
  return e;
}

Error Error::unauthenticated(std::string detail, std::string code) {
  Error e;
  e.kind = ErrorKind::unauthenticated;
  e.detail = std::move(detail);
  e.code = std::move(code);
  return e;
}

Error Error::forbidden(std::string detail) {
  Error e;
  e.kind = ErrorKind::forbidden;
  e.detail = std::move(detail);
  return e;
}

Error Error::not_found(std::string detail) {
  Error e;
  e.kind = ErrorKind::not_found;
  e.detail = std::move(detail);
  return e;
}

Error Error::throttled(int retry_after_seconds) {
  Error e;
  e.kind = ErrorKind::throttled;
  e.retry_after = std::max(1, retry_after_seconds);
  e.detail = "Request was throttled. Expected available in " + std::to_string(e.retry_after) +
             (e.retry_after == 1 ? " second." : " seconds.");
  return e;
}

Error Error::unavailable(std::string detail) {
  Error e;
  e.kind = ErrorKind::unavailable;
  e.detail = std::move(detail);
  return e;
}

}  // namespace chat
