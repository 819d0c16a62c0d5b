#include <boost/asio/io_context.hpp>

#include <cstdio>

#include "app/commands.hpp"
#include "app/open_store.hpp"

namespace chat::app {

int migrate(const config::Settings& s, bool list_only) {
  boost::asio::io_context io;
  auto store = open_store(s, io.get_executor());
  if (list_only) {
    for (const auto& m : store->migration_status()) {
      std::printf(" [%c] %04d_%s\n", m.applied ? 'X' : ' ', m.version, m.name.c_str());
    }
    return 0;
  }
  std::printf("Operations to perform: apply all migrations (%s)\n", store->describe().c_str());
  const auto applied = store->migrate();
  if (applied.empty()) std::printf("  No migrations to apply.\n");
  for (const auto& m : applied)
    std::printf("  Applying %04d_%s... OK\n", m.version, m.name.c_str());
  return 0;
}

}  // namespace chat::app
