#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <memory>

#include "config/settings.hpp"
#include "store/store.hpp"

namespace chat::app {

// The store the configuration names: SQLite without DB_HOST, PostgreSQL with it (its
// connections live on `executor`). Throws with a readable message when it cannot be opened.
std::unique_ptr<store::Store> open_store(const config::Settings& settings,
                                         boost::asio::any_io_executor executor);

}  // namespace chat::app
