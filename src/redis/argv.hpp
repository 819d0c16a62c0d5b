// Arguments in the shape redisAsyncCommandArgv takes: pointers and lengths, so that any
// byte (including NUL) passes through. Views into the strings, which must outlive the call.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace chat::redis::detail {

class Argv {
 public:
  explicit Argv(const std::vector<std::string>& args) {
    ptrs_.reserve(args.size());
    lens_.reserve(args.size());
    for (const auto& a : args) {
      ptrs_.push_back(a.data());
      lens_.push_back(a.size());
    }
  }
  [[nodiscard]] int argc() const { return static_cast<int>(ptrs_.size()); }
  [[nodiscard]] const char** argv() { return ptrs_.data(); }
  [[nodiscard]] const std::size_t* lens() const { return lens_.data(); }

 private:
  std::vector<const char*> ptrs_;
  std::vector<std::size_t> lens_;
};

}  // namespace chat::redis::detail
