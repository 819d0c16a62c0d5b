// What a client sends on a WebSocket after the handshake: the bytes are read as client
// frames (ws/frame_codec), and each complete text message goes to the event handler
// (realtime::ClientEvents) of a real chatd over a temporary SQLite store (fuzz_world.hpp),
// as alice. The first byte picks the socket with its lowest bit (0: her user socket, where
// events name their chat; 1: the group chat's socket) and with the next bit what follows:
// 0, client frames; 1, one message as it comes out of the frames (so that inserting a byte
// into its JSON does not first break a frame's length). Messages split over several frames
// are parsed but not put together (that is ws/ws_session.cpp's, which needs a connection).
//
// Invariants: a parsed frame lies inside the bytes read, keeps the size limit and the
// rules for control frames; a close code survives close_payload(); every answer to the
// sender is a JSON object with a type, and never "unavailable" (the store is healthy).

#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/unicode.hpp"
#include "fuzz_check.hpp"
#include "fuzz_world.hpp"
#include "realtime/client_events.hpp"
#include "ws/frame_codec.hpp"

namespace {

using chat::fuzz::require;
namespace ws = chat::ws;

constexpr std::size_t kMaxFrameBytes = 64 * 1024;  // WS_MAX_FRAME_BYTES's default

void check_frame(const ws::ClientFrame& f, const char* begin, std::size_t available) {
  require(f.size > 0 && f.size <= available, "a frame's size is outside the bytes read");
  require(f.payload.empty() ||
              (f.payload.data() >= begin && f.payload.data() + f.payload.size() <= begin + f.size),
          "a frame's payload is outside the frame");
  require(f.payload.size() <= kMaxFrameBytes, "a frame over the size limit was accepted");
  const bool control =
      f.opcode == ws::Opcode::close || f.opcode == ws::Opcode::ping || f.opcode == ws::Opcode::pong;
  require(!control || (f.fin && f.payload.size() <= 125),
          "a fragmented or long control frame was accepted");
}

void check_close(std::string_view payload) {
  const int code = ws::close_code_of(payload);
  require(code == 0 || code == 1005 || (code >= 1000 && code <= 4999),
          "close_code_of gave a code outside 1000-4999");
  if (code != 0 && code != 1005 && payload.size() >= 2) {
    const auto again = ws::close_payload(code, payload.substr(2));
    require(again.size() <= 125, "close_payload made a control frame too long");
    require(ws::close_code_of(again) == code, "a close code did not survive close_payload()");
  }
}

void check_answers(const std::vector<std::string>& frames, std::string_view event) {
  // FUZZ_VERBOSE=1: what each event got, to check that seeds reach what they are for.
  static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
  if (verbose) {
    std::fprintf(stderr, "%.200s -> %zu frame(s)%s%.200s\n", std::string(event).c_str(),
                 frames.size(), frames.empty() ? "" : ": ",
                 frames.empty() ? "" : frames.front().c_str());
  }
  for (const auto& frame : frames) {
    boost::system::error_code ec;
    auto v = boost::json::parse(frame, ec);
    require(!ec && v.is_object(), "an answer is not a JSON object", frame);
    const auto* type = v.as_object().if_contains("type");
    require(type != nullptr && type->is_string(), "an answer has no type", frame);
    if (type->as_string() == "error") {
      const auto* code = v.as_object().if_contains("code");
      require(code != nullptr && code->is_string(), "an error has no code", frame);
      require(code->as_string() != "unavailable", "an event made the store unavailable",
              std::string(event) + " -> " + frame);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  auto& world = chat::fuzz::world();
  chat::realtime::ClientContext ctx;
  ctx.user = world.alice;
  ctx.chat_id = (data[0] & 1) != 0 ? world.group_chat : 0;

  // The codec unmasks in place, as it does in a socket's read buffer.
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 2) != 0) {
    if (chat::unicode::is_valid_utf8(bytes)) {
      check_answers(world.run(world.events->handle(ctx, bytes)), bytes);
    }
    return 0;
  }
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    char* begin = bytes.data() + pos;
    const std::size_t available = bytes.size() - pos;
    const auto parsed = ws::parse_client_frame(begin, available, kMaxFrameBytes);
    if (parsed.close_code != 0) {
      require(parsed.close_code == 1002 || parsed.close_code == 1009,
              "a refused frame closes with neither 1002 nor 1009");
      break;
    }
    if (!parsed.frame) break;  // incomplete
    const ws::ClientFrame frame = *parsed.frame;
    check_frame(frame, begin, available);
    pos += frame.size;
    if (frame.opcode == ws::Opcode::close) {
      check_close(frame.payload);
      break;
    }
    if (frame.opcode != ws::Opcode::text || !frame.fin) continue;
    if (!chat::unicode::is_valid_utf8(frame.payload)) continue;  // the session closes with 1007
    const std::string text(frame.payload);
    check_answers(world.run(world.events->handle(ctx, text)), text);
  }
  return 0;
}
