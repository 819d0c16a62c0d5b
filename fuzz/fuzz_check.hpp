// The invariants a fuzz target checks beyond what the sanitizers see: a broken one prints
// what was expected and aborts, which libFuzzer (and the replay driver) report as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace chat::fuzz {

[[noreturn]] inline void fail(std::string_view what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz invariant broken: %.*s\n", static_cast<int>(what.size()), what.data());
  if (!detail.empty()) {
    // Enough to recognise the case; the input itself is what libFuzzer saves.
    const auto shown = detail.substr(0, 2000);
    std::fprintf(stderr, "  %.*s\n", static_cast<int>(shown.size()), shown.data());
  }
  std::abort();
}

inline void require(bool ok, std::string_view what, std::string_view detail = {}) {
  if (!ok) fail(what, detail);
}

}  // namespace chat::fuzz
