// Setting up a benchmark through the public API (API.md), as any client would: users
// registered, chats created, tokens taken from the answers.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "net.hpp"

namespace chatbench {

struct User {
  std::int64_t id = 0;
  std::string username;
  std::string access;
};

// Registers `count` users named <prefix><i> over `connections` keep-alive connections.
asio::awaitable<std::vector<User>> register_users(const Target& target, const std::string& prefix,
                                                  int count, int connections);

// A group of `members` (the first is its owner); returns its id.
asio::awaitable<std::int64_t> create_group(HttpConnection& http, const User& owner,
                                           const std::vector<std::int64_t>& member_ids,
                                           const std::string& name);

// The private chat of `me` and `other`; returns its id.
asio::awaitable<std::int64_t> create_private(HttpConnection& http, const User& me,
                                             std::int64_t other);

// Runs `count` jobs `job(i)` with at most `parallel` at a time, each on its own
// keep-alive connection.
asio::awaitable<void> for_each_parallel(
    const Target& target, int count, int parallel,
    std::function<asio::awaitable<void>(HttpConnection&, int)> job);

}  // namespace chatbench
