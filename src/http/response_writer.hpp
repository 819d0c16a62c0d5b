// Writes an answer to its connection. Most answers fit in the socket's send buffer: they
// go out in one send at once, without the timed asynchronous write's bookkeeping, which
// cost more than the send itself for a page of history (Beast's serializer and the
// stream's operation, 8 % of a request against 10 % for the kernel's send). What does not
// fit follows asynchronously, under the stream's timeout. For http/server.cpp only: it
// includes Beast's stream.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>

namespace chat::http {

// The status line and header fields, as Beast's serializer writes them.
std::string response_head_text(const boost::beast::http::response_header<>& head);

boost::asio::awaitable<boost::beast::error_code> write_response(
    boost::beast::tcp_stream& stream,
    const boost::beast::http::response<boost::beast::http::string_body>& res);

}  // namespace chat::http
