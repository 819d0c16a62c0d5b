#include "ws/frame_codec.hpp"

namespace chat::ws {
namespace {

constexpr std::uint8_t kFin = 0x80;
constexpr std::uint8_t kReserved = 0x70;
constexpr std::uint8_t kMasked = 0x80;

bool known(std::uint8_t op) {
  return op <= 2 || (op >= 8 && op <= 10);
}

}  // namespace

ParsedFrame parse_client_frame(char* data, std::size_t size, std::size_t max_payload) {
  ParsedFrame out;
  if (size < 2) return out;
  auto* b = reinterpret_cast<std::uint8_t*>(data);
  const std::uint8_t op = b[0] & 0x0F;
  const bool fin = (b[0] & kFin) != 0;
  if ((b[0] & kReserved) != 0 || !known(op) || (b[1] & kMasked) == 0) {
    out.close_code = 1002;
    return out;
  }
  std::uint64_t n = b[1] & 0x7F;
  std::size_t pos = 2;
  if (op >= 8 && (n > 125 || !fin)) {
    out.close_code = 1002;
    return out;
  }
  if (n == 126) {
    if (size < 4) return out;
    n = (std::uint64_t{b[2]} << 8) | b[3];
    pos = 4;
  } else if (n == 127) {
    if (size < 10) return out;
    n = 0;
    for (int i = 0; i < 8; ++i) n = (n << 8) | b[2 + i];
    pos = 10;
  }
  // Refused as soon as the header says so: nothing that large is ever buffered.
  if (n > max_payload) {
    out.close_code = 1009;
    return out;
  }
  const std::size_t mask_at = pos;
  pos += 4;
  if (size < pos + n) return out;
  const std::uint8_t mask[4] = {b[mask_at], b[mask_at + 1], b[mask_at + 2], b[mask_at + 3]};
  for (std::size_t i = 0; i < n; ++i) b[pos + i] ^= mask[i & 3];
  out.frame = ClientFrame{static_cast<Opcode>(op), fin,
                          std::string_view(data + pos, static_cast<std::size_t>(n)),
                          pos + static_cast<std::size_t>(n)};
  return out;
}

std::size_t server_header(Opcode opcode, std::size_t n, char* out) {
  out[0] = static_cast<char>(kFin | static_cast<std::uint8_t>(opcode));
  if (n < 126) {
    out[1] = static_cast<char>(n);
    return 2;
  }
  if (n <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<char>(n >> 8);
    out[3] = static_cast<char>(n & 0xFF);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i)
    out[2 + i] = static_cast<char>((std::uint64_t{n} >> (56 - 8 * i)) & 0xFF);
  return 10;
}

std::string server_frame(Opcode opcode, std::string_view payload) {
  char header[kMaxHeader];
  std::string out(header, server_header(opcode, payload.size(), header));
  out.append(payload);
  return out;
}

std::string close_payload(int code, std::string_view reason) {
  std::string out;
  out.push_back(static_cast<char>((code >> 8) & 0xFF));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason.substr(0, 123));
  return out;
}

int close_code_of(std::string_view payload) {
  if (payload.empty()) return 1005;
  if (payload.size() == 1) return 0;
  const int code =
      (static_cast<std::uint8_t>(payload[0]) << 8) | static_cast<std::uint8_t>(payload[1]);
  // RFC 6455 7.4: what an endpoint may put on the wire, with 1012-1014 that IANA's
  // registry added (service restart, try again later, bad gateway; chatd sends 1013).
  const bool allowed = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                       (code >= 3000 && code <= 4999);
  return allowed ? code : 0;
}

}  // namespace chat::ws
