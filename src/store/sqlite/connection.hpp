// Thin RAII wrappers over the SQLite C API: a connection with a cache of prepared
// statements, a statement with bind/step/column helpers, and a transaction guard.
// A Connection is used by one thread at a time (the store's executors guarantee it).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace chat::store::sqlite {

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

  sqlite3* handle() { return db_; }

  // Inside a group transaction (Database's group commit), a Transaction is a savepoint.
  void set_in_group(bool on) { in_group_ = on; }
  [[nodiscard]] bool in_group() const { return in_group_; }

 private:
  sqlite3* db_ = nullptr;
  bool in_group_ = false;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

// The first row of a bound statement as `reader` reads it, or nullopt when there is none.
template <class Reader>
auto first_row(Statement& s, Reader reader) -> std::optional<decltype(reader(s))> {
  if (!s.step()) return std::nullopt;
  return reader(s);
}

// BEGIN IMMEDIATE ... COMMIT, or inside a group transaction SAVEPOINT ... RELEASE; rolls
// back (to the savepoint) when destroyed without commit().
class Transaction {
 public:
  explicit Transaction(Connection& conn);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Connection& conn_;
  bool savepoint_ = false;
  bool done_ = false;
};

// True when the last failure was a UNIQUE constraint (callers turn it into a value).
class ConstraintViolation : public std::exception {
 public:
  [[nodiscard]] const char* what() const noexcept override { return "constraint violation"; }
};

}  // namespace chat::store::sqlite
