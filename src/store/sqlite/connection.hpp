// Thin RAII wrappers over the SQLite C API: a connection with a cache of prepared
// statements, a statement with bind/step/column helpers, and a transaction guard.
// A Connection is used by one thread at a time (the store's executors guarantee it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace chat::store::sqlite {

// Transaction control, run through Connection::prepare's cache (keyed by these pointers).
inline constexpr const char* kBegin = "BEGIN";
inline constexpr const char* kBeginImmediate = "BEGIN IMMEDIATE";
inline constexpr const char* kCommit = "COMMIT";
inline constexpr const char* kSavepoint = "SAVEPOINT tx";
inline constexpr const char* kRelease = "RELEASE tx";

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();  // resets the cached statement and clears its bindings

  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, bool value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const std::string& value) {
    return bind(index, std::string_view(value));
  }
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind_null(int index);
  template <class T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }

  // Advances one row: true when a row is available, false when done.
  bool step();
  // Runs to completion; returns the number of rows changed.
  int exec();

  [[nodiscard]] std::int64_t int64(int col) const;
  [[nodiscard]] std::string text(int col) const;
  [[nodiscard]] bool is_null(int col) const;
  [[nodiscard]] std::optional<std::int64_t> optional_int64(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Connection {
 public:
  // Opens (creating when `create`) the database and applies the connection pragmas.
  Connection(const std::string& path, bool read_only, const std::string& synchronous);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // A prepared statement from this connection's cache. `sql` must be a string with static
  // storage (the named constants beside each store), which is also the cache key.
  Statement prepare(const char* sql);
  // Runs one or more statements without results (migrations, pragmas).
  void exec_script(const std::string& sql);
  // Ends an open transaction without reporting errors (on the way out of a failed read).
  void rollback_quietly() noexcept;
  [[nodiscard]] std::int64_t last_insert_rowid() const;
  // Runs the reads of `f` for at most about `budget` of this thread's CPU time (and eight
  // times that of the wall clock's): true when they finished; false when a statement was
  // stopped there (SQLite's progress handler; the transaction goes on). For a read that may
  // end early or cost a great deal, beside a dearer way that is sure.
  bool within(std::chrono::microseconds budget, const std::function<void()>& f);

  sqlite3* handle() { return db_; }

  // Inside a group transaction (Database's group commit) a Transaction opens no savepoint:
  // a savepoint copies every page a write changes before changing it (a build without them
  // sent 8-11 % more messages a second), to undo what hardly ever needs undoing. One that
  // changed rows and then rolls back asks for the whole group to be undone instead
  // (want_group_undo); Database rolls the group back and runs its writes again, each in a
  // savepoint (isolating), until the group commits.
  void set_in_group(bool on) {
    in_group_ = on;
    isolating_ = false;
  }
  [[nodiscard]] bool in_group() const { return in_group_; }
  void set_isolating(bool on) { isolating_ = on; }
  [[nodiscard]] bool isolating() const { return isolating_; }
  void want_group_undo() { group_undo_wanted_ = true; }
  // Whether a Transaction asked for the group to be undone since the last call.
  bool take_group_undo() { return std::exchange(group_undo_wanted_, false); }
  // Rows inserted, updated or deleted by this connection's statements so far (SQLite's
  // count, triggers included; a statement that failed changed none).
  [[nodiscard]] std::int64_t total_changes() const;

  // Writes that belong to the transaction but cost less done together at its end (the
  // full-text index: see index_text in chat_store.cpp). Queued here, dropped with a
  // Transaction that rolls back, and run in order just before the transaction's COMMIT.
  void defer(std::function<void(Connection&)> step) { deferred_.push_back(std::move(step)); }
  // Runs (and empties) the queue. A step that throws stays queued with those after it, and
  // the transaction is to be rolled back: a write that runs the queue early (purge_slice in
  // chat_store.cpp) fails, and the group's COMMIT runs the rest or fails the group.
  void run_deferred();
  [[nodiscard]] std::size_t deferred_count() const { return deferred_.size(); }
  void drop_deferred_from(std::size_t mark);

 private:
  sqlite3* db_ = nullptr;
  bool in_group_ = false;
  bool isolating_ = false;
  bool group_undo_wanted_ = false;
  std::vector<std::function<void(Connection&)>> deferred_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

// The first row of a bound statement as `reader` reads it, or nullopt when there is none.
template <class Reader>
auto first_row(Statement& s, Reader reader) -> std::optional<decltype(reader(s))> {
  if (!s.step()) return std::nullopt;
  return reader(s);
}

// BEGIN IMMEDIATE ... COMMIT, rolled back when destroyed without commit(), with the
// deferred writes it queued. Inside a group transaction it opens nothing: destroyed without
// commit() after its statements changed rows, it asks for the group to be undone
// (Connection::want_group_undo); once the group isolates its writes, it is a SAVEPOINT ...
// RELEASE rolled back to the savepoint. So a write in a group that goes on after one of its
// Transactions rolled back still sees that Transaction's rows until the group is redone:
// what it does then is discarded with the group, and it must not act on it outside the
// database (every write here only reads and writes through its connection).
class Transaction {
 public:
  // Its own BEGIN ... COMMIT; a savepoint of an isolating group; a part of a group.
  enum class Kind { own, savepoint, in_group };

  explicit Transaction(Connection& conn);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Connection& conn_;
  Kind kind_;
  bool done_ = false;
  std::size_t deferred_mark_ = 0;
  std::int64_t changes_mark_ = 0;
};

// True when the last failure was a UNIQUE constraint (callers turn it into a value).
class ConstraintViolation : public std::exception {
 public:
  [[nodiscard]] const char* what() const noexcept override { return "constraint violation"; }
};

// A statement stopped by Connection::within's deadline.
class Interrupted : public std::exception {
 public:
  [[nodiscard]] const char* what() const noexcept override { return "interrupted"; }
};

}  // namespace chat::store::sqlite
