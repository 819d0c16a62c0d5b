// A chatd without sockets for the fuzz targets that reach the service layer: the real
// routes, services and event handler over the real SQLite store, in a temporary folder.
// Built on first use and shared by every input of the process, as a server is shared by
// its requests. It starts with three users (alice, bob, and carol, who is staff), a group
// chat (1) of alice and bob, a private chat (2) between them and two messages of alice's
// in the group (1 and 2), so the ids a seed names exist.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include "store/user_store.hpp"

namespace chat::http {
class HttpApp;
}
namespace chat::realtime {
class ClientEvents;
}

namespace chat::fuzz {

struct World {
  boost::asio::io_context io;
  const http::HttpApp* app = nullptr;           // ALLOWED_HOSTS: localhost, testserver, [::1]
  const http::HttpApp* app_any_host = nullptr;  // ALLOWED_HOSTS=*
  realtime::ClientEvents* events = nullptr;
  store::UserRecord alice;
  std::int64_t group_chat = 0;

  // `text` with each "<alice>", "<bob>" and "<carol>" replaced by an access token of that
  // user (valid for years), so inputs can reach the endpoints behind authentication.
  [[nodiscard]] std::string with_tokens(std::string_view text) const;

  // Runs `task` on `io` to completion and returns its result (rethrowing its exception).
  // Only this task's handlers are waited for: a typing indicator's five-second timer
  // stays pending in the context without holding the input up.
  template <class T>
  T run(boost::asio::awaitable<T> task) {
    io.restart();
    auto result = boost::asio::co_spawn(io, std::move(task), boost::asio::use_future);
    while (result.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      if (io.run_one() == 0) io.restart();
    }
    io.poll();
    return result.get();
  }

  struct Parts;
  Parts* parts = nullptr;  // the services; never destroyed (their threads run to exit)
};

// The process's world, built by the first call.
World& world();

}  // namespace chat::fuzz
