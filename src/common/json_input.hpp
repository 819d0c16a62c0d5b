#pragma once

#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include <string_view>

namespace chat {

// JSON from a client (a request body, a socket frame), read as Python's `json` reads it
// where Boost.JSON would read it otherwise: an integer literal past 64 bits is exact in
// Python, and DRF's CharField keeps `str(n)`, its digits, where Boost.JSON makes a double
// of it (`9.71255795213417e+28`). Inside an object or array such an integer is read as
// the string of its digits; at the top level (never a valid body) it stays a number. An
// integer of more than 4,300 digits is an error (value_too_large), as Python refuses to
// read it.
boost::json::value parse_client_json(std::string_view text, int max_depth,
                                     boost::system::error_code& ec);

}  // namespace chat
