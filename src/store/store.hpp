// The storage seam: one object per backend that hands out the per-entity stores.
// Chosen at start-up from the configuration (SQLite when DB_HOST is empty).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/admin_store.hpp"
#include "store/chat_store.hpp"
#include "store/token_store.hpp"
#include "store/user_store.hpp"

namespace chat::store {

// Thrown when the database cannot be reached or fails; the transports answer 503.
class Unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MigrationStatus {
  int version = 0;
  std::string name;
  bool applied = false;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual UserStore& users() = 0;
  virtual RefreshTokenStore& refresh_tokens() = 0;
  virtual ChatStore& chats() = 0;
  virtual AdminStore& admin() = 0;

  // Applies pending migrations in order, each in its own transaction; safe to repeat and
  // to run from several processes at once. Returns the versions it applied. Blocking: for
  // start-up and the `migrate` command only.
  virtual std::vector<MigrationStatus> migrate() = 0;
  virtual std::vector<MigrationStatus> migration_status() = 0;

  // True when the database answers a trivial query.
  virtual boost::asio::awaitable<bool> ping() = 0;

  // Human-readable name for logs ("sqlite:db.sqlite3").
  [[nodiscard]] virtual std::string describe() const = 0;
};

}  // namespace chat::store
