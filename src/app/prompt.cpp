#include "app/prompt.hpp"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <stdexcept>

namespace chat::app {

std::string prompt(const char* label, bool secret) {
  std::fprintf(stderr, "%s", label);
  std::fflush(stderr);
  termios old{};
  const bool tty = secret && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
  if (tty) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  if (!std::getline(std::cin, line)) {
    if (tty) tcsetattr(STDIN_FILENO, TCSANOW, &old);
    throw std::runtime_error("no input");
  }
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  return line;
}

}  // namespace chat::app
