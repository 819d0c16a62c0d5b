// Runs one awaitable to its end on an I/O context of the caller's (a management command's
// store calls, a test's), and returns its result or throws its exception.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <utility>

namespace chat::app {

template <class T>
T run_to_end(boost::asio::io_context& io, boost::asio::awaitable<T> work) {
  io.restart();
  auto result = boost::asio::co_spawn(io, std::move(work), boost::asio::use_future);
  io.run();
  return result.get();
}

}  // namespace chat::app
