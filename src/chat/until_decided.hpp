// Check-and-write, again when the check went stale. An attempt checks the caller's rights,
// then writes under the standing it checked (store::Standing); it answers nullopt when the
// write found that standing changed meanwhile (a demotion, a removal, a departure), and the
// rights are then checked again against what changed: the answer is what a request made
// after that change would get. Ten changes in a row mean the chat changes faster than it
// can be read: 503, and the client may try again.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <optional>

#include "common/result.hpp"

namespace chat::chats {

constexpr int kDecisionAttempts = 10;

// `attempt`: a callable returning awaitable<std::optional<Result<T>>>.
template <class T, class Attempt>
boost::asio::awaitable<Result<T>> until_decided(Attempt attempt) {
  for (int i = 0; i < kDecisionAttempts; ++i) {
    std::optional<Result<T>> done = co_await attempt();
    if (done) co_return std::move(*done);
  }
  co_return Error::unavailable();
}

}  // namespace chat::chats
