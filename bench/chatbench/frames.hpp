// WebSocket framing as chatbench needs it (RFC 6455): the frames a client sends (masked)
// and reading the frames a server sends (unmasked) out of a byte buffer, many per read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chatbench {

enum class Opcode : std::uint8_t { text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// One masked client frame with FIN set.
std::string client_frame(Opcode op, std::string_view payload);
// One unmasked server frame with FIN set (the relay's frames).
std::string server_frame(Opcode op, std::string_view payload);

struct Frame {
  Opcode opcode = Opcode::text;
  bool fin = true;
  std::string_view payload;  // unmasked, pointing into the buffer
  std::size_t size = 0;      // header and payload
};

// The first frame in `bytes`, or nullopt when it is not complete yet. Masked frames (from
// clients, for the relay) are unmasked in place. Throws std::runtime_error on a frame
// larger than `max_payload`.
std::optional<Frame> next_frame(char* bytes, std::size_t size, std::size_t max_payload);

}  // namespace chatbench
