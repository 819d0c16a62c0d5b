#include "store/sqlite/database.hpp"

#include "store/store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <future>
#include <utility>

namespace chat::store::sqlite {

// The writer checkpoints itself only past four times the background checkpoints' start.
Database::Database(const std::string& path, const std::string& synchronous, int readers,
                   int checkpoint_pages)
    : path_(path),
      synchronous_(synchronous),
      writer_(std::make_unique<Connection>(path, false, synchronous)),
      checkpointer_(path, synchronous, checkpoint_pages, 4 * checkpoint_pages),
      reader_pool_(static_cast<std::size_t>(readers)) {
  checkpointer_.watch(writer_->handle());
  for (int i = 0; i < readers; ++i) {
    idle_readers_.push_back(std::make_unique<Connection>(path, true, synchronous));
  }
}

Database::~Database() {
  // The quiet timer would hold the writer's pool up to kQuiet.
  boost::asio::post(writer_pool_, [this] { quiet_.cancel(); });
  writer_pool_.join();
  reader_pool_.join();
}

namespace {
// Up to 1,024 writes per COMMIT. At 256, 1,000 senders each waiting for its acknowledgement
// queued behind up to three full groups; alternating closed-loop runs gave a p99 of
// 105-145 ms against 125-252 ms, and no less throughput. The bytes written per message
// hardly change: most pages a message dirties are its chat's own index leaves.
constexpr int kMaxGroup = 1024;
constexpr std::chrono::microseconds kGroupWindow{1000};
// Writes stopped this long ago: the WAL is copied back (Checkpointer::writer_quiet). At most
// one such checkpoint (and its fsync) a second, however the writes trickle in.
constexpr std::chrono::seconds kQuiet{1};
// How soon to look again while a checkpoint of the quiet WAL is under way.
constexpr std::chrono::milliseconds kQuietRetry{50};
}  // namespace

void Database::begin_group() {
  if (writer_->in_group()) return;
  writer_->prepare(kBeginImmediate).exec();
  writer_->set_in_group(true);
}

bool Database::group_lost() const {
  // SQLite rolls a whole transaction back on some errors (disk full, I/O).
  return writer_->in_group() && sqlite3_get_autocommit(writer_->handle()) != 0;
}

void Database::roll_back_group() {
  if (sqlite3_get_autocommit(writer_->handle()) == 0) {
    sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  writer_->set_in_group(false);
  writer_->drop_deferred_from(0);
  hooks_.clear();
}

void Database::fail_group(const std::exception_ptr& error) {
  roll_back_group();
  group_size_ = 0;
  for (auto& d : std::exchange(deferred_, {})) d->complete(error);
}

void Database::redo_group() {
  redos_.inc();
  // Each write registers its hooks and queues its deferred steps again as it runs again.
  roll_back_group();
  try {
    begin_group();
  } catch (...) {
    fail_group(std::current_exception());
    return;
  }
  writer_->set_isolating(true);
  for (auto& d : deferred_) {
    d->rerun(*writer_);
    if (group_lost()) return;
  }
}

void Database::finish_write(bool undo) {
  ++group_size_;
  if (undo && !group_lost()) redo_group();
  // The group is lost: every write in it so far is told so now.
  if (group_lost()) {
    fail_group(std::make_exception_ptr(Unavailable("sqlite: the transaction was rolled back")));
    pending_writes_.fetch_sub(1);
    return;
  }
  // Another write is queued (or about to be): it joins this group, unless the group is full.
  if (pending_writes_.fetch_sub(1) > 1 && group_size_ < kMaxGroup) return;
  // At most one commit per window: a commit writes every page the group changed to the
  // WAL, and groups of one or two (sends arriving a few hundred microseconds apart) wrote
  // the same pages of the same indexes again and again. A write arriving after a quiet
  // window commits at once; under load the group stays open to the window's end.
  const auto due = last_commit_ + kGroupWindow;
  if (group_size_ >= kMaxGroup || std::chrono::steady_clock::now() >= due) {
    commit_group();
    return;
  }
  if (window_armed_) return;
  window_armed_ = true;
  window_.expires_at(due);
  window_.async_wait([this](boost::system::error_code) {
    window_armed_ = false;
    // Whichever group is open now (a write may have committed the one this was armed for
    // and begun another). A write queued meanwhile commits or re-arms when it finishes.
    if (writer_->in_group() && pending_writes_.load() == 0) commit_group();
  });
}

void Database::commit_group() {
  std::exception_ptr failed;
  if (writer_->in_group()) {
    try {
      writer_->run_deferred();
      writer_->prepare(kCommit).exec();
      commits_.inc();
    } catch (...) {
      failed = std::current_exception();
      roll_back_group();  // its hooks are not run
    }
    writer_->set_in_group(false);
  }
  group_size_ = 0;
  last_commit_ = std::chrono::steady_clock::now();
  auto hooks = std::exchange(hooks_, {});
  auto deferred = std::exchange(deferred_, {});
  // A group that did not commit committed none of its writes: each caller hears so.
  if (!failed) {
    for (auto& hook : hooks) hook();
  }
  for (auto& d : deferred) d->complete(failed);
  checkpointer_.writer_turn(pending_writes_.load() == 0);
  if (!quiet_armed_) arm_quiet(last_commit_ + kQuiet);
}

// One timer for all commits: when it fires early (writes kept coming), it waits again
// from the last commit; while the quiet WAL is being copied, it looks again shortly.
void Database::arm_quiet(std::chrono::steady_clock::time_point at) {
  quiet_armed_ = true;
  quiet_.expires_at(at);
  quiet_.async_wait([this](boost::system::error_code ec) {
    quiet_armed_ = false;
    if (ec) return;  // the database is closing
    const auto now = std::chrono::steady_clock::now();
    const bool writing = writer_->in_group() || pending_writes_.load() > 0;
    const bool quiet = !writing && now >= last_commit_ + kQuiet;
    if (!quiet || !checkpointer_.writer_quiet()) {
      arm_quiet(std::max(last_commit_ + kQuiet, now + kQuietRetry));
    }
  });
}

void Database::after_commit(std::function<void()> hook) {
  if (writer_->in_group()) {
    hooks_.push_back(std::move(hook));
  } else {
    hook();
  }
}

Database::Lease::Lease(Database& d) : db(d) {
  std::lock_guard lock(db.readers_mutex_);
  if (db.idle_readers_.empty()) {
    // More reads at once than connections so far (reads run on the I/O threads as well as
    // the reader pool): one more, kept for next time.
    conn = std::make_unique<Connection>(db.path_, true, db.synchronous_);
  } else {
    conn = std::move(db.idle_readers_.back());
    db.idle_readers_.pop_back();
  }
}

Database::Lease::~Lease() {
  std::lock_guard lock(db.readers_mutex_);
  db.idle_readers_.push_back(std::move(conn));
}

}  // namespace chat::store::sqlite
