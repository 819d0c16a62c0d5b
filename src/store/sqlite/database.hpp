// The threads that run SQLite: one writer thread with the only write connection (SQLite
// allows one writer at a time; queuing writes here instead of contending on the file
// lock keeps commits fast and ordered), and read-only connections in WAL mode: short
// reads run on the caller's thread, scans on a pool of reader threads.
//
// Group commit: writes that queue up while the writer is busy run in one transaction, and
// one COMMIT ends the group once the queue is empty (or 1,024 writes in), but no sooner than
// a millisecond after the previous COMMIT. A write that rolls back rows it changed undoes
// only itself: the group is rolled back and its writes run again, each in a savepoint of
// its own (Transaction), which the common case does not pay for. Every write's caller
// resumes only after that COMMIT, and after-commit hooks (the event listener) run right
// after it, in order: nothing is acknowledged or published before it is committed.
// Private to store/sqlite: it is the only place that includes Asio's thread pool.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include "common/offload.hpp"

#include <atomic>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "metrics/metrics.hpp"
#include "store/sqlite/checkpointer.hpp"
#include "store/sqlite/connection.hpp"

namespace chat::store::sqlite {

// The completion signature of a write returning R.
template <class R>
struct CompletionOf {
  using type = void(std::exception_ptr, R);
};
template <>
struct CompletionOf<void> {
  using type = void(std::exception_ptr);
};

class Database {
 public:
  // Checkpoints start once the WAL holds `checkpoint_pages` pages (see Checkpointer).
  Database(const std::string& path, const std::string& synchronous, int readers,
           int checkpoint_pages = 10000);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Runs f(Connection&) on the writer thread, inside the current group transaction; the
  // caller resumes on its own executor once the group has committed.
  template <class F>
  auto write(F f) -> boost::asio::awaitable<std::invoke_result_t<F, Connection&>> {
    using R = std::invoke_result_t<F, Connection&>;
    namespace asio = boost::asio;
    using Signature = typename CompletionOf<R>::type;
    return asio::async_initiate<const asio::use_awaitable_t<>&, Signature>(
        [this](auto handler, F fn) {
          pending_writes_.fetch_add(1);
          auto work = asio::make_work_guard(asio::get_associated_executor(handler));
          const auto queued_at = std::chrono::steady_clock::now();
          asio::post(writer_pool_, [this, handler = std::move(handler), fn = std::move(fn),
                                    work = std::move(work), queued_at]() mutable {
            run_grouped(std::move(fn), std::move(handler), std::move(work), queued_at);
          });
        },
        asio::use_awaitable, std::move(f));
  }

  // Runs `hook` once the current write's group has committed (right away outside one).
  // Writer thread only.
  void after_commit(std::function<void()> hook);

  // Runs f(Connection&) on the calling thread with a read-only connection. For reads whose
  // cost is bounded by what they return (index lookups, a page of history): they are served
  // from memory (the file is mapped), and a trip to another thread and back costs more
  // than the read itself. No suspension: the connection is never held across a co_await.
  template <class F>
  auto read(F f) -> boost::asio::awaitable<std::invoke_result_t<F, Connection&>> {
    co_return timed_read(reads_metrics_, f);
  }

  // Runs f(Connection&) on a reader thread with a read-only connection: for reads whose
  // cost grows with the data (full-text search, administration lists), which must not hold
  // up the sockets of an I/O thread. Replays too (their cost grows with the user's chats).
  template <class F>
  auto scan(F f) -> boost::asio::awaitable<std::invoke_result_t<F, Connection&>> {
    return offload(reader_pool_.get_executor(),
                   [this, f = std::move(f)]() mutable { return timed_read(scans_metrics_, f); });
  }

  // Every statement of a read sees one snapshot, and the snapshot's locks are taken once
  // (each statement on its own would lock and unlock the file and the WAL index again).
  template <class F>
  static auto in_read_transaction(Connection& c, F& f) -> std::invoke_result_t<F&, Connection&> {
    c.prepare(kBegin).exec();
    try {
      if constexpr (std::is_void_v<std::invoke_result_t<F&, Connection&>>) {
        f(c);
        c.prepare(kCommit).exec();
      } else {
        auto result = f(c);
        c.prepare(kCommit).exec();
        return result;
      }
    } catch (...) {
      c.rollback_quietly();
      throw;
    }
  }

  // A read with a leased connection, timed for /metrics (a throw counts as an error).
  template <class F>
  auto timed_read(const metrics::DbCallMetrics& m, F& f) -> std::invoke_result_t<F&, Connection&> {
    metrics::DbCallTimer timer(m);
    Lease lease(*this);
    if constexpr (std::is_void_v<std::invoke_result_t<F&, Connection&>>) {
      in_read_transaction(*lease.conn, f);
      timer.ok();
    } else {
      auto result = in_read_transaction(*lease.conn, f);
      timer.ok();
      return result;
    }
  }

  // Blocking: for start-up and commands, never from an I/O thread. Not grouped.
  template <class F>
  auto write_blocking(F f) -> std::invoke_result_t<F, Connection&> {
    auto task = [this, f = std::move(f)]() mutable {
      commit_group();
      return f(*writer_);
    };
    return boost::asio::post(writer_pool_, std::packaged_task<decltype(task())()>(std::move(task)))
        .get();
  }

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  // A write's completion, held until its group commits, with the write itself: it runs
  // again if the group is undone (redo_group).
  struct Deferred {
    virtual ~Deferred() = default;
    virtual void complete(std::exception_ptr commit_error) = 0;
    virtual void rerun(Connection& c) = 0;
  };

  template <class F, class Result>
  static void run_write(F& fn, Connection& c, Result& result) {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, Connection&>>) {
      fn(c);
      result.emplace(true);
    } else {
      result.emplace(fn(c));
    }
  }

  template <class F, class Handler, class Work>
  void run_grouped(F fn, Handler handler, Work work,
                   std::chrono::steady_clock::time_point queued_at) {
    using R = std::invoke_result_t<F&, Connection&>;
    namespace asio = boost::asio;
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> result;
    try {
      begin_group();
      run_write(fn, *writer_, result);
    } catch (...) {
      error = std::current_exception();
    }
    // A Transaction of the write rolled back rows it had changed: only undoing the group
    // takes them out (a write without one keeps what it did before it threw, as ever).
    const bool undo = writer_->take_group_undo();
    struct Completion final : Deferred {
      F fn;
      Handler handler;
      Work work;
      std::exception_ptr error;
      decltype(result) value;
      const metrics::DbCallMetrics& timing;
      std::chrono::steady_clock::time_point queued_at;
      Completion(F f, Handler h, Work w, std::exception_ptr e, decltype(result) v,
                 const metrics::DbCallMetrics& m, std::chrono::steady_clock::time_point q)
          : fn(std::move(f)),
            handler(std::move(h)),
            work(std::move(w)),
            error(std::move(e)),
            value(std::move(v)),
            timing(m),
            queued_at(q) {}
      void rerun(Connection& c) override {
        error = nullptr;
        value.reset();
        try {
          run_write(fn, c, value);
        } catch (...) {
          error = std::current_exception();
        }
      }
      void complete(std::exception_ptr commit_error) override {
        auto ex = asio::get_associated_executor(handler);
        auto e = commit_error ? commit_error : error;
        // From the call to its group's commit: what the caller waits.
        timing.record(queued_at, e == nullptr);
        asio::dispatch(ex, [h = std::move(handler), e, v = std::move(value)]() mutable {
          if constexpr (std::is_void_v<R>) {
            std::move(h)(e);
          } else {
            std::move(h)(e, v && !e ? std::move(*v) : R{});
          }
        });
      }
    };
    deferred_.push_back(std::make_unique<Completion>(
        std::move(fn), std::move(handler), std::move(work), std::move(error), std::move(result),
        writes_metrics_, queued_at));
    finish_write(undo);
  }

  void begin_group();
  // Commits the group when no write is waiting (or the group is full); first undoes and
  // redoes it when the write just run asked for that (`undo`).
  void finish_write(bool undo);
  // Rolls the open transaction back (if SQLite has not) and drops the group's deferred
  // steps and hooks; the writes stay in deferred_.
  void roll_back_group();
  // Rolls the open group back and runs its writes again, each in a savepoint of its own.
  void redo_group();
  // Every write of the open group is told `error`; the group is left rolled back.
  void fail_group(const std::exception_ptr& error);
  [[nodiscard]] bool group_lost() const;
  void commit_group();
  void arm_quiet(std::chrono::steady_clock::time_point at);

  struct Lease {
    explicit Lease(Database& db);
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Database& db;
    std::unique_ptr<Connection> conn;
  };

  std::string path_;
  std::string synchronous_;
  const metrics::DbCallMetrics writes_metrics_ = metrics::DbCallMetrics::of("sqlite", "write");
  const metrics::DbCallMetrics reads_metrics_ = metrics::DbCallMetrics::of("sqlite", "read");
  const metrics::DbCallMetrics scans_metrics_ = metrics::DbCallMetrics::of("sqlite", "scan");
  // Group transactions committed (each holds one or more writes), and undone to be redone.
  metrics::Counter& commits_ = metrics::metrics().sqlite_commits;
  metrics::Counter& redos_ = metrics::metrics().sqlite_group_redos;
  std::unique_ptr<Connection> writer_;
  Checkpointer checkpointer_;
  std::mutex readers_mutex_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;
  // Writer thread only, but for pending_writes_.
  std::atomic<int> pending_writes_{0};
  int group_size_ = 0;
  std::vector<std::unique_ptr<Deferred>> deferred_;
  std::vector<std::function<void()>> hooks_;
  boost::asio::thread_pool writer_pool_{1};
  boost::asio::thread_pool reader_pool_;
  // Writer thread only: the group commit window (finish_write).
  std::chrono::steady_clock::time_point last_commit_{};
  bool window_armed_ = false;
  boost::asio::steady_timer window_{writer_pool_};
  // Writer thread only: copying the WAL back once writes stop (arm_quiet).
  bool quiet_armed_ = false;
  boost::asio::steady_timer quiet_{writer_pool_};
};

}  // namespace chat::store::sqlite
