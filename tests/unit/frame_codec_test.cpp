// The WebSocket framing chatd does itself after the handshake: client frames unmasked,
// fragments and control frames told apart, and anything malformed or too big refused.
#include <gtest/gtest.h>

#include "ws/frame_codec.hpp"

using namespace chat::ws;

namespace {

std::string masked(std::uint8_t first, std::string_view payload, bool mask = true) {
  std::string out;
  out.push_back(static_cast<char>(first));
  const std::uint8_t m = mask ? 0x80 : 0;
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(m | payload.size()));
  } else {
    out.push_back(static_cast<char>(m | 126));
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size() & 0xFF));
  }
  const char key[4] = {0x11, 0x22, 0x33, 0x44};
  if (mask) out.append(key, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(mask ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  }
  return out;
}

}  // namespace

TEST(FrameCodec, UnmasksTextFramesAndReportsTheirSize) {
  std::string bytes = masked(0x81, R"({"type":"ping"})") + masked(0x81, std::string(300, 'a'));
  auto first = parse_client_frame(bytes.data(), bytes.size(), 1024);
  ASSERT_TRUE(first.frame);
  EXPECT_EQ(first.frame->opcode, Opcode::text);
  EXPECT_TRUE(first.frame->fin);
  EXPECT_EQ(first.frame->payload, R"({"type":"ping"})");
  auto second =
      parse_client_frame(bytes.data() + first.frame->size, bytes.size() - first.frame->size, 1024);
  ASSERT_TRUE(second.frame);
  EXPECT_EQ(second.frame->payload, std::string(300, 'a'));
  EXPECT_EQ(first.frame->size + second.frame->size, bytes.size());
}

TEST(FrameCodec, AnIncompleteFrameAsksForMore) {
  std::string bytes = masked(0x81, "hello");
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::string part = bytes.substr(0, n);
    auto r = parse_client_frame(part.data(), part.size(), 1024);
    EXPECT_FALSE(r.frame) << n;
    EXPECT_EQ(r.close_code, 0) << n;
  }
}

TEST(FrameCodec, FragmentsAndControlFrames) {
  std::string bytes = masked(0x01, "he") + masked(0x89, "p") + masked(0x80, "llo");
  auto a = parse_client_frame(bytes.data(), bytes.size(), 1024);
  ASSERT_TRUE(a.frame);
  EXPECT_FALSE(a.frame->fin);
  auto b = parse_client_frame(bytes.data() + a.frame->size, bytes.size() - a.frame->size, 1024);
  ASSERT_TRUE(b.frame);
  EXPECT_EQ(b.frame->opcode, Opcode::ping);
  const std::size_t used = a.frame->size + b.frame->size;
  auto c = parse_client_frame(bytes.data() + used, bytes.size() - used, 1024);
  ASSERT_TRUE(c.frame);
  EXPECT_EQ(c.frame->opcode, Opcode::continuation);
  EXPECT_TRUE(c.frame->fin);
  EXPECT_EQ(c.frame->payload, "llo");
}

TEST(FrameCodec, RefusesWhatTheProtocolForbids) {
  for (const std::string& bad :
       {masked(0x81, "x", false),                // unmasked
        masked(0xC1, "x"),                       // reserved bit
        masked(0x83, "x"),                       // reserved opcode
        masked(0x09, "x"),                       // fragmented ping
        masked(0x89, std::string(126, 'p'))}) {  // control frame over 125 bytes
    std::string copy = bad;
    auto r = parse_client_frame(copy.data(), copy.size(), 1 << 20);
    EXPECT_FALSE(r.frame);
    EXPECT_EQ(r.close_code, 1002);
  }
  std::string big = masked(0x81, std::string(2000, 'b'));
  // Refused from the header alone, before the payload arrives.
  auto r = parse_client_frame(big.data(), 8, 1024);
  EXPECT_EQ(r.close_code, 1009);
}

TEST(FrameCodec, ServerHeadersAndClosePayloads) {
  char h[kMaxHeader];
  EXPECT_EQ(server_header(Opcode::text, 125, h), 2U);
  EXPECT_EQ(static_cast<std::uint8_t>(h[0]), 0x81);
  EXPECT_EQ(static_cast<std::uint8_t>(h[1]), 125);
  EXPECT_EQ(server_header(Opcode::text, 126, h), 4U);
  EXPECT_EQ(server_header(Opcode::text, 70000, h), 10U);
  EXPECT_EQ(server_frame(Opcode::pong, "ab"), std::string("\x8a\x02"
                                                          "ab",
                                                          4));
  EXPECT_EQ(close_code_of(close_payload(4003, "account deactivated")), 4003);
  EXPECT_EQ(close_payload(1000, std::string(200, 'r')).size(), 125U);
  EXPECT_EQ(close_code_of(""), 1005);
  EXPECT_EQ(close_code_of("x"), 0);
  EXPECT_EQ(close_code_of(close_payload(1005, "")), 0);  // never sent on the wire
  for (int code : {1012, 1013, 1014}) EXPECT_EQ(close_code_of(close_payload(code, "")), code);
  for (int code : {1004, 1006, 1015, 1016, 2999, 5000}) {
    EXPECT_EQ(close_code_of(close_payload(code, "")), 0) << code;
  }
}
