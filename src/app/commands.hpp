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
// A value not given as a flag comes from Django's DJANGO_SUPERUSER_* variables in `env`
// (the environment, or the .env file as Docker Compose would pass it on).
int create_superuser(const config::Settings& settings, const config::Environment& env,
                     SuperuserOptions options);

// Django's changepassword: `username`, else the name of the account running the command.
int change_password(const config::Settings& settings, std::optional<std::string> username);

void configure_logging(const config::Settings& settings);

}  // namespace chat::app
