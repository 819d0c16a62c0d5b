// Gathers the unread recounts the hub asks for and reads them from the store together per
// user: the recounts asked before the gathering job runs (a resume's, for every chat its
// replay touched; a socket's that opened during traffic) become one read of up to
// kChatsPerRead chats, where each was a read of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/chat_records.hpp"

namespace chat::realtime {

class RecountBatcher {
 public:
  // Chats per read at most: on SQLite a read runs on the I/O thread, which must not stop
  // for long (a resume may ask about hundreds).
  static constexpr std::size_t kChatsPerRead = 64;

  using Done = std::function<void(std::optional<store::UnreadCount>)>;
  // `read(user, chats, done)` reads the user's counts of these chats in one snapshot and
  // calls `done` with them, asynchronously (nullopt when the store failed).
  using Read = std::function<void(std::int64_t, std::vector<std::int64_t>,
                                  std::function<void(std::optional<store::UnreadCounts>)>)>;
  // `post(job)` runs a job later on an I/O thread.
  using Post = std::function<void(std::function<void()>)>;

  RecountBatcher(Read read, Post post) : read_(std::move(read)), post_(std::move(post)) {}

  // Thread-safe; has the hub's Recount signature. `done` gets the chat's count and the seq
  // of the read it came from.
  void ask(std::int64_t chat_id, std::int64_t user_id, Done done);

 private:
  void read_waiting();

  Read read_;
  Post post_;
  std::mutex mutex_;
  // user -> (chat, done) in the order asked
  std::unordered_map<std::int64_t, std::vector<std::pair<std::int64_t, Done>>> waiting_;
  bool posted_ = false;
};

}  // namespace chat::realtime
