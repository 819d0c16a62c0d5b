// A WebSocket connection after its upgrade was admitted. Private to the transport: it
// includes Beast, and only http/server.cpp includes it.
#pragma once

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "ws/gate.hpp"
#include "ws/realtime_context.hpp"

namespace chat::ws {

// Takes the connection over from the HTTP session (which ends): answers the upgrade and
// runs the socket until it closes, on the connection's strand.
void start_socket(boost::beast::tcp_stream stream,
                  boost::beast::http::request<boost::beast::http::string_body> request,
                  Admission admission, RealtimeContext& context);

}  // namespace chat::ws
