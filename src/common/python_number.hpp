// Numbers as Python reads and writes them, for answers that must match what the original
// Django project would say.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace boost::json {
class value;
}

namespace chat {

// Python's int() on text (as DRF's pagination reads limit and offset, and Django turns a pk
// given as text into a number): whitespace around it, a sign, digits with single
// underscores between them, any size (past int64 it saturates). Nothing when it is not an
// integer.
std::optional<std::int64_t> python_int(std::string_view text);
// The same, telling whether the value saturated.
std::optional<std::int64_t> python_int(std::string_view text, bool& saturated);

// A JSON value as DRF's IntegerField reads it (REST bodies and socket events alike): an
// integer, or a float or text that Python's int() takes once a trailing ".0..." is cut
// ("7", " +7 ", "7.0", "1_000", 7.0) within int64.
// Nothing for anything else; null and a missing field are the caller's to report.
std::optional<std::int64_t> integer_field(const boost::json::value& v);

// str() of a Python float: "5.0", "0.0001", "1e-05", "1.5e+16".
std::string python_float(double d);

}  // namespace chat
