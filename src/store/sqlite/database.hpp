// The threads that run SQLite: one writer thread with the only write connection (SQLite
// allows one writer at a time; queuing writes here instead of contending on the file
// lock keeps commits fast and ordered), and a pool of read-only connections for readers
// in WAL mode. Coroutines hop to these threads and back, so no I/O thread ever blocks.
// Private to store/sqlite: it is the only place that includes Asio's thread pool.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include "common/offload.hpp"

#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "store/sqlite/connection.hpp"

namespace chat::store::sqlite {

class Database {
 public:
  Database(const std::string& path, const std::string& synchronous, int readers);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Runs f(Connection&) on the writer thread; the caller resumes on its own executor.
  template <class F>
  auto write(F f) -> boost::asio::awaitable<std::invoke_result_t<F, Connection&>> {
    return offload(writer_pool_.get_executor(),
                   [this, f = std::move(f)]() mutable { return f(*writer_); });
  }

  // Runs f(Connection&) on a reader thread with a read-only connection.
  template <class F>
  auto read(F f) -> boost::asio::awaitable<std::invoke_result_t<F, Connection&>> {
    return offload(reader_pool_.get_executor(), [this, f = std::move(f)]() mutable {
      Lease lease(*this);
      return f(*lease.conn);
    });
  }

  // Blocking: for start-up and commands, never from an I/O thread.
  template <class F>
  auto write_blocking(F f) -> std::invoke_result_t<F, Connection&> {
    auto task = [this, f = std::move(f)]() mutable { return f(*writer_); };
    return boost::asio::post(writer_pool_, std::packaged_task<decltype(task())()>(std::move(task)))
        .get();
  }

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
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
  std::unique_ptr<Connection> writer_;
  std::mutex readers_mutex_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;
  boost::asio::thread_pool writer_pool_{1};
  boost::asio::thread_pool reader_pool_;
};

}  // namespace chat::store::sqlite
