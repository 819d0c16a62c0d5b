// Reading a line from the terminal, for the interactive management commands.
#pragma once

#include <string>

namespace chat::app {

// Prints `label` to stderr and reads one line of stdin, without echo when `secret` and stdin
// is a terminal. Throws std::runtime_error at the end of input.
std::string prompt(const char* label, bool secret);

}  // namespace chat::app
