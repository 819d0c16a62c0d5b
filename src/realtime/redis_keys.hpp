// Redis keys that more than one part of a node reads.
#pragma once

#include <string>

namespace chat::realtime {

// A sorted set of the nodes, each scored by when its presence expires (milliseconds, Redis's
// clock): a node is alive while its score is in the future. Kept by RedisPresence; read by
// the socket limit to tell which nodes' sockets still count.
inline std::string node_expiries_key(const std::string& prefix) {
  return prefix + "pne";
}

}  // namespace chat::realtime
