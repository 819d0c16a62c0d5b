// A Response as Beast writes it, with the headers every answer of chatd carries: REST's and
// the refusals of socket handshakes alike. Beast's headers: for the two files that write
// to sockets, not for widely included ones.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>

#include "http/message.hpp"

namespace chat::http {

// `head`: the length of the body, without it (HEAD).
boost::beast::http::response<boost::beast::http::string_body> to_beast(
    Response&& r, unsigned version, bool keep_alive, bool head, const std::string& request_id);

}  // namespace chat::http
