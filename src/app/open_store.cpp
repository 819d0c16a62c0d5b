#include "app/open_store.hpp"

#include "store/postgres/pg_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace chat::app {

std::unique_ptr<store::Store> open_store(const config::Settings& settings,
                                         boost::asio::any_io_executor executor) {
  if (!settings.db.host.empty()) {
    return store::postgres::open_store(settings.db, std::move(executor));
  }
  return store::sqlite::open_store(settings.db);
}

}  // namespace chat::app
