// Copies the WAL back into the database file on a thread of its own, so that the writer
// does not stop for it.
//
// SQLite checkpoints in the connection whose commit took the WAL past its limit: here the
// writer, which then copied 10,000 pages and synced the file before its group's callers
// heard back (the 50-100 ms stalls that made a send's p99). Instead the writer reports the
// WAL's size at each commit (sqlite3_wal_hook), and past `pages` (or 10 s after the last
// start, under a steady trickle) this thread runs PASSIVE checkpoints with a connection of
// its own, beside the writer and the readers, until all but a few frames are copied. The
// WAL starts over only once every frame is copied, which a checkpoint running beside the
// writer rarely sees: so the writer copies the few left
// itself, after a commit, once its callers are answered and while no write waits (or after
// 64 busy commits), and its next write starts the WAL over. Should the WAL still reach
// `writer_limit` pages (readers holding old snapshots, say), the writer checkpoints
// everything itself, as SQLite would. And once writes stop for a while, whatever is left
// is copied the same way (this thread, then the writer's few frames): a reader looks every
// page up in the WAL's index first unless all of the WAL is copied, and then reads the
// database file alone.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

struct sqlite3;

namespace chat::metrics {
class Counter;
}

namespace chat::store::sqlite {

class Connection;

class Checkpointer {
 public:
  Checkpointer(const std::string& path, const std::string& synchronous, int pages,
               int writer_limit);
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  ~Checkpointer();  // waits for a checkpoint under way

  // Replaces SQLite's automatic checkpoints on `writer`, whose commits then report here.
  void watch(sqlite3* writer);
  // On the writer's thread after each commit's callers are answered: copies what the
  // background left, or the whole WAL past writer_limit. `idle_now`: no write is waiting.
  void writer_turn(bool idle_now);
  // On the writer's thread when no write has come for a while: starts a background
  // checkpoint of the frames not yet copied, and copies what one left. True once nothing
  // is left to copy; false: call again later.
  bool writer_quiet();

 private:
  static int on_commit(void* self, sqlite3* db, const char* schema, int frames);
  void checkpoint_in_background();

  struct Thread;
  int pages_;
  int writer_limit_;
  std::unique_ptr<Connection> conn_;
  // The writer's thread only.
  sqlite3* writer_ = nullptr;
  int frames_ = 0;
  int postponed_ = 0;
  std::chrono::steady_clock::time_point last_start_ = std::chrono::steady_clock::now();
  // idle -> running (this thread) -> copied (the writer's turn) -> idle.
  enum State : int { idle, running, copied };
  std::atomic<int> state_{idle};
  // Counted in chatd_sqlite_checkpoints_total{by}.
  metrics::Counter& background_runs_;
  metrics::Counter& writer_runs_;
  std::unique_ptr<Thread> thread_;
};

}  // namespace chat::store::sqlite
