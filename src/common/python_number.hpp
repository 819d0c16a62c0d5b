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

// A JSON value as the server reads an integer field (REST bodies and socket events alike):
// an integer, a float with no fraction, or text of decimal digits (whitespace around it
// trimmed) within int64. Nothing for anything else; null and a missing field are the
// caller's to report.
std::optional<std::int64_t> integer_field(const boost::json::value& v);

// str() of a Python float: "5.0", "0.0001", "1e-05", "1.5e+16".
std::string python_float(double d);

}  // namespace chat
