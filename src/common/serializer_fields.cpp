#include "common/serializer_fields.hpp"

#include <unicode/uchar.h>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "common/python_number.hpp"
#include "common/unicode.hpp"

namespace chat {
namespace {

namespace json = boost::json;

// Python's str.isprintable() of one character: neither a control, format, surrogate,
// private-use or unassigned character, nor a separator other than the space.
bool python_printable(char32_t cp) {
  if (cp == ' ') return true;
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_SURROGATE:
    case U_PRIVATE_USE_CHAR:
    case U_UNASSIGNED:
    case U_LINE_SEPARATOR:
    case U_PARAGRAPH_SEPARATOR:
    case U_SPACE_SEPARATOR:
      return false;
    default:
      return true;
  }
}

// Python's repr() of a str: single quotes unless it holds one and no double quote, and
// escapes for what str.isprintable() refuses (\xNN, \uNNNN or \UNNNNNNNN by size).
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
    } else if (!python_printable(cp)) {
      char buf[12];
      const auto code = static_cast<unsigned>(cp);
      const int n = cp <= 0xFF     ? std::snprintf(buf, sizeof buf, "\\x%02x", code)
                    : cp <= 0xFFFF ? std::snprintf(buf, sizeof buf, "\\u%04x", code)
                                   : std::snprintf(buf, sizeof buf, "\\U%08x", code);
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

}  // namespace

std::string FormValues::key(std::string_view name) {
  std::string key = "\xff";
  key += name;
  return key;
}

bool FormValues::is_form(const json::object& body) {
  return body.contains(key(""));
}

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

std::optional<std::int64_t> FieldReader::pk_value(const char* name, const json::value& item) {
  // PrimaryKeyRelatedField looks the pk up as given, and Django's int() turns text such
  // as "5" (and a float such as 5.0) into an id as well; an id that cannot exist, null
  // included, is reported as not found. A JSON number with a fraction is refused: Django
  // would cut 1.5 down to 1 and take a user nobody named.
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
  return id;
}

std::optional<std::int64_t> FieldReader::pk(const char* name, bool required) {
  const json::value* v = given(name, required);
  if (v == nullptr) return std::nullopt;
  // DRF's RelatedField reads "" as None, which allow_null=False refuses before any lookup.
  if (v->is_null() || (v->is_string() && v->get_string().empty())) {
    errors_.add(name, "This field may not be null.");
    return std::nullopt;
  }
  return pk_value(name, *v);
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
    auto id = pk_value(name, item);
    if (!id) return std::nullopt;
    out.push_back(*id);
  }
  return out;
}

}  // namespace chat
