#include "frames.hpp"

#include <stdexcept>

namespace chatbench {
namespace {

constexpr std::uint8_t kFin = 0x80;
constexpr std::uint8_t kMasked = 0x80;
// The mask does not need to be secret here: no proxy sits between chatbench and the server.
constexpr std::uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};

std::string header(Opcode op, std::size_t n, bool masked) {
  std::string h;
  h.push_back(static_cast<char>(kFin | static_cast<std::uint8_t>(op)));
  const std::uint8_t mask_bit = masked ? kMasked : 0;
  if (n < 126) {
    h.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    h.push_back(static_cast<char>(mask_bit | 126));
    h.push_back(static_cast<char>(n >> 8));
    h.push_back(static_cast<char>(n & 0xFF));
  } else {
    h.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8)
      h.push_back(static_cast<char>((n >> shift) & 0xFF));
  }
  return h;
}

}  // namespace

std::string client_frame(Opcode op, std::string_view payload) {
  std::string out = header(op, payload.size(), true);
  out.append(reinterpret_cast<const char*>(kMask), 4);
  const std::size_t start = out.size();
  out.append(payload);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out[start + i] = static_cast<char>(static_cast<std::uint8_t>(out[start + i]) ^ kMask[i % 4]);
  }
  return out;
}

std::string server_frame(Opcode op, std::string_view payload) {
  std::string out = header(op, payload.size(), false);
  out.append(payload);
  return out;
}

std::optional<Frame> next_frame(char* bytes, std::size_t size, std::size_t max_payload) {
  if (size < 2) return std::nullopt;
  auto* b = reinterpret_cast<std::uint8_t*>(bytes);
  Frame f;
  f.fin = (b[0] & kFin) != 0;
  f.opcode = static_cast<Opcode>(b[0] & 0x0F);
  const bool masked = (b[1] & kMasked) != 0;
  std::uint64_t n = b[1] & 0x7F;
  std::size_t pos = 2;
  if (n == 126) {
    if (size < 4) return std::nullopt;
    n = (std::uint64_t{b[2]} << 8) | b[3];
    pos = 4;
  } else if (n == 127) {
    if (size < 10) return std::nullopt;
    n = 0;
    for (int i = 0; i < 8; ++i) n = (n << 8) | b[2 + i];
    pos = 10;
  }
  if (n > max_payload) throw std::runtime_error("frame too large");
  const std::size_t mask_at = pos;
  if (masked) pos += 4;
  if (size < pos + n) return std::nullopt;
  if (masked) {
    for (std::size_t i = 0; i < n; ++i) b[pos + i] ^= b[mask_at + (i % 4)];
  }
  f.payload = std::string_view(bytes + pos, static_cast<std::size_t>(n));
  f.size = pos + static_cast<std::size_t>(n);
  return f;
}

}  // namespace chatbench
