// What the interactive management commands share: reading a line from the terminal, and
// running one store call to its end on the command's own I/O context.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <string>
#include <utility>

namespace chat::app {

// Prints `label` to stderr and reads one line of stdin, without echo when `secret` and stdin
// is a terminal. Throws std::runtime_error at the end of input.
std::string prompt(const char* label, bool secret);

template <class T>
T run_to_end(boost::asio::io_context& io, boost::asio::awaitable<T> work) {
  io.restart();
  auto result = boost::asio::co_spawn(io, std::move(work), boost::asio::use_future);
  io.run();
  return result.get();
}

}  // namespace chat::app
