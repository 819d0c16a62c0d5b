// The PostgreSQL store: the same Store interface as SQLite, on a bounded pool of nonblocking
// libpq connections that live on the server's I/O context (no thread per query).
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <string>

#include "config/settings.hpp"
#include "store/store.hpp"

namespace chat::store::postgres {

// libpq's connection string for these settings (values quoted, so any password works).
std::string conninfo(const config::DatabaseSettings& settings);

std::unique_ptr<Store> open_store(const config::DatabaseSettings& settings,
                                  boost::asio::any_io_executor executor);

}  // namespace chat::store::postgres
