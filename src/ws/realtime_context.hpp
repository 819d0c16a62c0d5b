// Everything a WebSocket session needs, handed to the HTTP server by `serve`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>

namespace chat::store {
class Store;
}
namespace chat::realtime {
class Hub;
class Presence;
class ClientEvents;
class SocketLimit;
}  // namespace chat::realtime

namespace chat::ws {

class Gate;
class KeepAlive;

struct SocketLimits {
  std::size_t max_frame_bytes = std::size_t{64} * 1024;  // larger: close 1009
  double events_per_second = 30;                         // sustained...
  double burst = 60;                                     // ...with bursts; past that: close 1008
  std::size_t max_queued_frames = 4096;  // a reader this far behind is closed as slow...
  std::size_t max_queued_bytes = std::size_t{8} * 1024 * 1024;  // ...or with this much queued
  std::chrono::seconds idle_timeout{60};  // pings at half of it; silence past it closes
};

struct RealtimeContext {
  Gate& gate;
  realtime::Hub& hub;
  realtime::Presence& presence;
  realtime::ClientEvents& events;
  store::Store& store;
  KeepAlive& keepalive;
  SocketLimits limits;
  // The deployment's count of each user's sockets; null on one node (the hub counts).
  realtime::SocketLimit* socket_limit = nullptr;
  // Sessions not yet destroyed (shutdown waits for them).
  std::atomic<int> sessions_running{0};
};

}  // namespace chat::ws
