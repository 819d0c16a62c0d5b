#include "app/open_store.hpp"

#include <stdexcept>

#include "store/sqlite/sqlite_store.hpp"

namespace chat::app {

std::unique_ptr<store::Store> open_store(const config::Settings& settings) {
  if (!settings.db.host.empty()) {
    throw std::runtime_error(
        "DB_HOST is set, but this build of chatd has no PostgreSQL store yet; unset DB_HOST to "
        "use the embedded SQLite database");
  }
  return store::sqlite::open_store(settings.db);
}

}  // namespace chat::app
