// Password fields of request bodies, read as DRF's CharField reads them (trimmed, blank
// refused), with the text as sent kept beside (see auth::PasswordAttempt).
#pragma once

#include <boost/json/object.hpp>

#include <optional>

#include "auth/password_attempt.hpp"
#include "common/serializer_fields.hpp"

namespace chat::http {

inline std::optional<auth::PasswordAttempt> password_field(FieldReader& f,
                                                           const boost::json::object& body,
                                                           const char* name, bool required) {
  // No length limit: a password longer than any chatd sets cannot match, and is refused
  // as a wrong one would be (SimpleJWT's field has no limit either).
  auto text = f.string(name, {.required = required});
  if (!text) return std::nullopt;
  auth::PasswordAttempt attempt{std::move(*text), {}};
  if (const auto* v = body.if_contains(name); v != nullptr && v->is_string()) {
    if (v->get_string() != attempt.text) attempt.as_sent = std::string(v->get_string());
  }
  return attempt;
}

}  // namespace chat::http
