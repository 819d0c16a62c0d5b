// From Beast's parsed request to the transport-free Request the app handles: header names
// lower-cased, the target split into a decoded path and query pairs. Shared by the server
// and the HTTP fuzz target, so the fuzzer sees requests exactly as the app does.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http/message.hpp"

namespace chat::http {

// Fills the method, headers, body (moved out of `msg`), path and query of `req`. False
// when the target is not a valid origin-form URL or decodes to invalid UTF-8 or NUL (the
// server answers 400); the rest is filled either way.
bool read_request(boost::beast::http::request<boost::beast::http::string_body>& msg, Request& req);

}  // namespace chat::http
