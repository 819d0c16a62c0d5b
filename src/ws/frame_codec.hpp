// WebSocket framing after the handshake (RFC 6455), done here rather than by Beast so
// that a socket's queued frames go out in one write: reading client frames (masked,
// possibly fragmented, control frames in between) and writing server frame headers.
// No I/O: bytes in, frames out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chat::ws {

enum class Opcode : std::uint8_t {
  continuation = 0,
  text = 1,
  binary = 2,
  close = 8,
  ping = 9,
  pong = 10
};

struct ClientFrame {
  Opcode opcode = Opcode::text;
  bool fin = true;
  std::string_view payload;  // unmasked in place, pointing into the caller's buffer
  std::size_t size = 0;      // bytes of the frame, header included
};

struct ParsedFrame {
  std::optional<ClientFrame> frame;  // nullopt: incomplete (read more), or an error
  int close_code = 0;                // set on a protocol error (1002) or a frame too big (1009)
};

// The first frame of `data`. Client frames must be masked, use no reserved bits or
// opcodes, and control frames must be final and at most 125 bytes.
ParsedFrame parse_client_frame(char* data, std::size_t size, std::size_t max_payload);

constexpr std::size_t kMaxHeader = 10;
// Writes the header of an unmasked, final server frame into `out`; returns its length.
std::size_t server_header(Opcode opcode, std::size_t payload_size, char* out);
// A whole server frame (for control frames and tests).
std::string server_frame(Opcode opcode, std::string_view payload);
// The payload of a close frame: the code, then the reason cut to fit 123 bytes.
std::string close_payload(int code, std::string_view reason);
// The code in a close frame's payload: 1005 (none given) when it is empty, 0 when the
// payload is malformed (one byte, or a code no endpoint may send).
int close_code_of(std::string_view payload);

}  // namespace chat::ws
