// The one error type every service returns. It says what went wrong in terms a client can
// act on; the transports (REST, WebSocket) each turn it into their wire shape in one place.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace chat {

enum class ErrorKind {
  validation,       // 400, {"field": ["message", ...]}
  bad_request,      // 400, {"detail": "..."}
  unauthenticated,  // 401
  forbidden,        // 403
  not_found,        // 404
  throttled,        // 429, with Retry-After
  unavailable,      // 503: a backing service does not answer
};

// Validation messages per field, in the order the fields were checked, as DRF reports them.
class FieldErrors {
 public:
  void add(std::string field, std::string message);
  // A body that could not be read at all (not JSON, a media type no parser takes). DRF
  // raises it where a view first reads request.data, after its object and permission
  // checks; carried here, it answers in place of the fields (Error::validation).
  void set_unreadable_body(std::string detail, std::string code);
  // From here on add() changes nothing: the errors so far (a body that is JSON but not an
  // object: non-empty) are all DRF reports, as it reads no field of such a body.
  void seal() { sealed_ = true; }
  [[nodiscard]] const std::string& unreadable_body() const { return unreadable_detail_; }
  [[nodiscard]] const std::string& unreadable_body_code() const { return unreadable_code_; }
  [[nodiscard]] bool empty() const { return items_.empty() && unreadable_detail_.empty(); }
  [[nodiscard]] bool has(std::string_view field) const;
  [[nodiscard]] const std::vector<std::pair<std::string, std::vector<std::string>>>& items() const {
    return items_;
  }

 private:
  std::vector<std::pair<std::string, std::vector<std::string>>> items_;
  std::string unreadable_detail_;
  std::string unreadable_code_;
  bool sealed_ = false;
};

struct Error {
  ErrorKind kind = ErrorKind::bad_request;
  std::string detail;   // human-readable message for detail-shaped errors
  std::string code;     // DRF/SimpleJWT machine code ("token_not_valid"), may be empty
  FieldErrors fields;   // for ErrorKind::validation
  int retry_after = 0;  // seconds, for ErrorKind::throttled
  // SimpleJWT lists the token classes it tried ("AccessToken") when a bearer token fails,
  // each with its message; non-empty means the error carries that list.
  std::string token_message;

  static Error validation(FieldErrors fields);
  static Error field(std::string name, std::string message);
  static Error bad_request(std::string detail);
  static Error unauthenticated(std::string detail, std::string code = {});
  static Error forbidden(std::string detail = "You do not have permission to perform this action.");
  static Error not_found(std::string detail = "Not found.");
  static Error throttled(int retry_after_seconds);
  static Error unavailable(std::string detail = "Service temporarily unavailable.");
};

}  // namespace chat
