// The bare WebSocket relay that fan-out is compared with (relay.cpp).
#pragma once

#include <string>

namespace chatbench {

// Serves on host:port (0: any free port, printed) until SIGINT or SIGTERM.
int run_relay(const std::string& host, unsigned short port);

}  // namespace chatbench
