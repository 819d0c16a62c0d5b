#pragma once

#include <memory>

#include "config/settings.hpp"
#include "store/store.hpp"

namespace chat::app {

// The store the configuration names: SQLite without DB_HOST. Throws with a readable
// message when it cannot be opened.
std::unique_ptr<store::Store> open_store(const config::Settings& settings);

}  // namespace chat::app
