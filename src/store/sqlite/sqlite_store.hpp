// The embedded store: one SQLite file in WAL mode. See database.hpp for the threads.
#pragma once

#include <memory>
#include <string>

#include "config/settings.hpp"
#include "store/store.hpp"

namespace chat::store::sqlite {

std::unique_ptr<Store> open_store(const config::DatabaseSettings& settings);

}  // namespace chat::store::sqlite
