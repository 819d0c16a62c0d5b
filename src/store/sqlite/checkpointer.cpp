#include "store/sqlite/checkpointer.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <sqlite3.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "metrics/metrics.hpp"
#include "store/sqlite/connection.hpp"

namespace chat::store::sqlite {
namespace {
// The background thread stops after a pass that copied at most this many frames (what
// the writer appended during the pass before), or after this many passes.
constexpr int kLeftForWriter = 128;
constexpr int kMaxPasses = 8;
// Commits the writer lets pass, busy, before it copies the remainder anyway.
constexpr int kMaxPostponed = 64;
// A steady trickle of writes (never a quiet second) took the WAL to `pages` before its
// first copy, about 40 MB, so a disk with less free filled up with WAL alone. A checkpoint
// also starts when the last one started this long ago.
constexpr std::chrono::seconds kAtLeastEvery{10};
}  // namespace

struct Checkpointer::Thread {
  boost::asio::thread_pool pool{1};
};

Checkpointer::Checkpointer(const std::string& path, const std::string& synchronous, int pages,
                           int writer_limit)
    : pages_(pages),
      writer_limit_(writer_limit),
      conn_(std::make_unique<Connection>(path, false, synchronous)),
      background_runs_(metrics::metrics().sqlite_checkpoints.with({"background"})),
      writer_runs_(metrics::metrics().sqlite_checkpoints.with({"writer"})),
      thread_(std::make_unique<Thread>()) {}

Checkpointer::~Checkpointer() {
  thread_->pool.join();
}

void Checkpointer::watch(sqlite3* writer) {
  writer_ = writer;
  sqlite3_wal_hook(writer, &Checkpointer::on_commit, this);
}

// Inside the writer's COMMIT, with the number of frames now in the WAL.
int Checkpointer::on_commit(void* self, sqlite3* /*db*/, const char* /*schema*/, int frames) {
  auto& c = *static_cast<Checkpointer*>(self);
  c.frames_ = frames;
  if (c.state_.load() != idle) return SQLITE_OK;
  const auto now = std::chrono::steady_clock::now();
  if (frames >= c.pages_ || now - c.last_start_ >= kAtLeastEvery) {
    c.last_start_ = now;
    c.state_.store(running);
    boost::asio::post(c.thread_->pool, [&c] { c.checkpoint_in_background(); });
  }
  return SQLITE_OK;
}

void Checkpointer::writer_turn(bool idle_now) {
  const bool remainder = state_.load() == copied && (idle_now || ++postponed_ >= kMaxPostponed);
  if (!remainder && frames_ < writer_limit_) return;
  // PASSIVE from the writer copies every frame (no write runs beside it) unless a reader
  // still needs old ones; the next write then starts the WAL over.
  sqlite3_wal_checkpoint_v2(writer_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  frames_ = 0;
  postponed_ = 0;
  writer_runs_.inc();
  // A background checkpoint still under way ends in `copied`, and the writer's next turn
  // finds little or nothing left.
  int expected = copied;
  state_.compare_exchange_strong(expected, idle);
}

bool Checkpointer::writer_quiet() {
  switch (state_.load()) {
    case running:
      return false;
    case idle:
      if (frames_ == 0) return true;  // copied already
      // The bulk on the checkpoint thread, as ever: a write arriving meanwhile goes on.
      last_start_ = std::chrono::steady_clock::now();
      state_.store(running);
      boost::asio::post(thread_->pool, [this] { checkpoint_in_background(); });
      return false;
    default:  // copied: the few frames left, as after a commit
      writer_turn(true);
      return true;
  }
}

void Checkpointer::checkpoint_in_background() {
  int copied_before = 0;
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    int log = 0;
    int backfilled = 0;  // every frame copied so far, this pass's and earlier ones'
    const int rc = sqlite3_wal_checkpoint_v2(conn_->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                             &log, &backfilled);
    background_runs_.inc();
    // Anything but BUSY (another checkpoint running) is worth a line, not a stop: the WAL
    // keeps every commit until a later checkpoint copies it.
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      spdlog::warn("sqlite: checkpoint failed: {}", sqlite3_errstr(rc));
      break;
    }
    // Few frames this pass: the writer appended about as few during it, and copies those.
    if (rc != SQLITE_OK || (pass > 0 && backfilled - copied_before <= kLeftForWriter)) break;
    copied_before = backfilled;
  }
  state_.store(copied);
}

}  // namespace chat::store::sqlite
