// The PostgreSQL schema as numbered migrations, and the runner that applies them. Several
// nodes may start at once: an advisory lock makes them take turns, so each migration is
// applied exactly once.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <span>
#include <vector>

#include "store/store.hpp"

namespace chat::store::postgres {

class PgConnection;

struct PgMigration {
  int version;
  const char* name;
  const char* sql;
};

std::span<const PgMigration> pg_migrations();

// Applies what is pending, each migration in its own transaction; returns what it applied.
boost::asio::awaitable<std::vector<MigrationStatus>> migrate(PgConnection& conn);

}  // namespace chat::store::postgres
