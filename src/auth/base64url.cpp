#include "auth/base64url.hpp"

#include <array>
#include <cstdint>

namespace chat::auth {
namespace {

constexpr std::uint8_t kNotALetter = 0xFF;

constexpr std::array<std::uint8_t, 256> letter_values() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = kNotALetter;
  constexpr std::string_view kLetters =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (std::size_t i = 0; i < kLetters.size(); ++i) {
    t[static_cast<unsigned char>(kLetters[i])] = static_cast<std::uint8_t>(i);
  }
  return t;
}

constexpr auto kValues = letter_values();

}  // namespace

std::optional<std::string> base64url_decode(std::string_view in) {
  std::string out(in.size() / 4 * 3 + 2, '\0');
  char* next = out.data();
  std::uint32_t acc = 0;
  unsigned bits = 0;
  for (const char c : in) {
    const std::uint8_t v = kValues[static_cast<unsigned char>(c)];
    if (v == kNotALetter) return std::nullopt;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *next++ = static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // Two or four bits left over, all zero (or none): a length of 4n + 1 leaves six.
  if (bits > 4 || (acc & ((1U << bits) - 1U)) != 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(next - out.data()));
  return out;
}

}  // namespace chat::auth
