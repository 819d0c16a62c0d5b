// Gathers the unread recounts the hub asks for and reads them from the store together per
// user: the recounts asked before the gathering job runs (a resume's, for every chat its
// replay touched; a socket's that opened during traffic) become one read of up to
// kChatsPerRead chats, where each was a read of its own. A read that fails (the database
// away for a moment) is asked again later, so that a count is not left stale until its chat
// next changes.
#pragma once

#include <chrono>
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

  // Told the chat's count and the seq of the read it came from; or nullopt each time a
  // read of it failed, after which the count may still come. Answers whether a later
  // count is still wanted (false: the asker is gone, and no read is retried for it).
  using Done = std::function<bool(std::optional<store::UnreadCount>)>;
  // `read(user, chats, done)` reads the user's counts of these chats in one snapshot and
  // calls `done` with them, asynchronously (nullopt when the store failed).
  using Read = std::function<void(std::int64_t, std::vector<std::int64_t>,
                                  std::function<void(std::optional<store::UnreadCounts>)>)>;
  // `post(job)` runs a job later on an I/O thread.
  using Post = std::function<void(std::function<void()>)>;
  // `later(delay, job)` runs a job on an I/O thread once the delay has passed.
  using Later = std::function<void(std::chrono::milliseconds, std::function<void()>)>;

  // A failed read is asked again after 1 s, then after twice as long each time up to 30 s,
  // for about ten minutes in all (24 reads), while its askers still want the count.
  static constexpr int kAttempts = 24;
  static std::chrono::milliseconds retry_delay(int failures);

  RecountBatcher(Read read, Post post, Later later)
      : read_(std::move(read)), post_(std::move(post)), later_(std::move(later)) {}

  // Thread-safe; has the hub's Recount signature.
  void ask(std::int64_t chat_id, std::int64_t user_id, Done done) {
    ask(chat_id, user_id, std::move(done), 0);
  }

 private:
  struct Asker {
    std::int64_t chat_id = 0;
    Done done;
    int failures = 0;  // reads of this asker's count that failed so far
  };

  void ask(std::int64_t chat_id, std::int64_t user_id, Done done, int failures);
  void read_waiting();
  void answer(std::int64_t user_id, const std::vector<std::int64_t>& chats,
              std::vector<Asker>& askers, const std::optional<store::UnreadCounts>& counts);

  Read read_;
  Post post_;
  Later later_;
  std::mutex mutex_;
  // user -> askers in the order asked
  std::unordered_map<std::int64_t, std::vector<Asker>> waiting_;
  bool posted_ = false;
};

}  // namespace chat::realtime
