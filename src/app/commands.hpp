// The commands of `chatd`, as Django's manage.py has them.
#pragma once

#include <optional>
#include <string>

#include "config/settings.hpp"

namespace chat::app {

int serve(const config::Settings& settings);
int migrate(const config::Settings& settings, bool list_only);

struct SuperuserOptions {
  std::optional<std::string> username;
  std::optional<std::string> email;
  std::optional<std::string> password;
  bool no_input = false;
};
int create_superuser(const config::Settings& settings, SuperuserOptions options);

void configure_logging(const config::Settings& settings);

}  // namespace chat::app
