// How a Django REST Framework serializer field accepts or refuses a value of a request, with
// DRF's messages. Both doors read their input through it (a REST body, a WebSocket event), so
// a value means the same whichever way it came.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace chat {

// Where a form body's values are kept (http/form_body.hpp reads forms into a JSON object).
// The keys start with a byte that no parsed key can start with, as both form parsers and the
// JSON parser refuse text that is not UTF-8.
struct FormValues {
  // Every value of `name` (an array), when the body was a form.
  static std::string key(std::string_view name);
  // Whether the body was a form: a list field then reads a missing key as an empty list, and
  // an empty value of an optional field as left out.
  static bool is_form(const boost::json::object& body);
};

// Python's name for the type of a JSON value, as DRF's messages show it.
const char* python_type(const boost::json::value& v);

struct CharFieldOptions {
  bool required = true;
  bool allow_blank = false;
  bool trim = true;            // DRF's trim_whitespace
  std::size_t max_length = 0;  // in characters; 0 = no limit
  bool allow_null = false;     // null reads as absent
};

// Reads fields of a parsed body the way DRF serializer fields do, collecting messages.
class FieldReader {
 public:
  FieldReader(const boost::json::object& body, FieldErrors& errors)
      : body_(body), errors_(errors) {}

  // DRF CharField: strings, and numbers written as text; nullopt when missing or refused.
  std::optional<std::string> string(const char* name, CharFieldOptions options = {});
  // DRF ChoiceField: the value as it looks it up among the choices, Python's str() of it
  // (untrimmed; "" and ['group'] too), for the caller to find or refuse with
  // "\"<value>\" is not a valid choice."; nullopt when missing or null.
  std::optional<std::string> choice(const char* name, bool required = true);
  // DRF IntegerField.
  std::optional<std::int64_t> integer(const char* name, bool required = true);
  // DRF BooleanField: true/false, 1/0 and their usual spellings as text.
  std::optional<bool> boolean(const char* name, bool required = true);
  // DRF PrimaryKeyRelatedField: an id, whose object the caller looks up (and reports as
  // "Invalid pk" when missing).
  std::optional<std::int64_t> pk(const char* name, bool required = true);
  // DRF PrimaryKeyRelatedField(many=True): a list of ids.
  std::optional<std::vector<std::int64_t>> id_list(const char* name, bool required = true);

 private:
  // The field's value; nullptr when it is missing (an error when required) or a form's
  // blank that reads as left out.
  const boost::json::value* given(const char* name, bool required, bool allow_null = false,
                                  bool allow_blank = false);
  // One id of a PrimaryKeyRelatedField; nullopt (and an error) when it is not one.
  std::optional<std::int64_t> pk_value(const char* name, const boost::json::value& item);

  const boost::json::object& body_;
  FieldErrors& errors_;
};

}  // namespace chat
