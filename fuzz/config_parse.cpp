// A `.env` file, as chatd reads it at start-up: config::parse_dotenv, then load_settings()
// on the variables it found (for `serve` and for the other commands).
//
// Invariants: neither throws; the values found, written back as double-quoted lines,
// read back the same with no error; and when load_settings() reports no error, every
// duration it accepted is positive (each has a minimum of at least one second).

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/dotenv.hpp"
#include "config/settings.hpp"
#include "fuzz_check.hpp"

namespace {

using chat::fuzz::require;
namespace config = chat::config;

// A value inside double quotes, with the escapes the parser understands.
std::string quoted(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
        break;
    }
  }
  return out + "\"";
}

void check_settings(const config::LoadResult& r, std::string_view text) {
  if (!r.errors.empty()) return;
  const auto& s = r.settings;
  require(s.access_token_lifetime > 0 && s.refresh_token_lifetime > 0 &&
              s.login_failure_window > 0 && s.event_retention > 0 && s.ws_idle_timeout > 0,
          "a duration was accepted but is not positive", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool sodium_ready = sodium_init() >= 0;
  if (!sodium_ready) std::abort();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = config::parse_dotenv(text);

  std::string written;
  for (const auto& [key, value] : parsed.values) written += key + "=" + quoted(value) + "\n";
  const auto again = config::parse_dotenv(written);
  require(again.errors.empty(), "values written back do not parse", written);
  require(again.values == parsed.values, "values written back read differently", written);

  const config::Environment env(parsed.values.begin(), parsed.values.end());
  check_settings(config::load_settings(env, true), text);
  check_settings(config::load_settings(env, false), text);
  return 0;
}
