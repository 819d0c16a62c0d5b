#include "store/sqlite/database.hpp"

#include <future>

namespace chat::store::sqlite {

Database::Database(const std::string& path, const std::string& synchronous, int readers)
    : path_(path),
      synchronous_(synchronous),
      writer_(std::make_unique<Connection>(path, false, synchronous)),
      reader_pool_(static_cast<std::size_t>(readers)) {
  for (int i = 0; i < readers; ++i) {
    idle_readers_.push_back(std::make_unique<Connection>(path, true, synchronous));
  }
}

Database::~Database() {
  writer_pool_.join();
  reader_pool_.join();
}

Database::Lease::Lease(Database& d) : db(d) {
  std::lock_guard lock(db.readers_mutex_);
  if (db.idle_readers_.empty()) {
    // Only reached if a read runs outside the reader pool; open one more connection.
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
