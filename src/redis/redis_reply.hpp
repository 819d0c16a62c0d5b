// What a Redis server answers, copied out of hiredis so that no hiredis type reaches the
// callers, and the two ways a command can fail.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace chat::redis {

struct Reply {
  enum class Type { nil, integer, string, status, error, array };
  Type type = Type::nil;
  long long integer = 0;
  std::string str;              // string, status or error text
  std::vector<Reply> elements;  // array
};

// Not connected, or the connection was lost before the reply came: the command may or may
// not have run on the server.
class Unavailable : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

// The command had gone to the server when the connection was lost or given up, so it may
// have run there, or may yet (a server that hung reads what it was sent when it resumes).
class Unanswered : public Unavailable {
 public:
  using Unavailable::Unavailable;
};

// The server answered with an error reply (wrong type, unknown command...).
class ReplyError : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

}  // namespace chat::redis
