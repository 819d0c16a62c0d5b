// chatd: the chat server and its management commands, in the manner of Django's manage.py.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>

#include "app/commands.hpp"

namespace {

// Reads .env and the environment; prints every bad setting by name and returns false.
bool load(const std::string& env_file, bool for_serving, chat::config::Settings& out,
          chat::config::Environment& env) {
  std::vector<std::string> errors;
  env = chat::config::read_environment(env_file, errors);
  auto loaded = chat::config::load_settings(env, for_serving);
  errors.insert(errors.end(), loaded.errors.begin(), loaded.errors.end());
  if (!errors.empty()) {
    std::fprintf(stderr, "chatd: configuration error%s:\n", errors.size() > 1 ? "s" : "");
    for (const auto& e : errors) std::fprintf(stderr, "  %s\n", e.c_str());
    return false;
  }
  out = std::move(loaded.settings);
  chat::app::configure_logging(out);
  for (const auto& w : loaded.warnings) spdlog::warn("{}", w);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{
      "chatd: a chat server speaking the REST and WebSocket API of the Django chat backend"};
  cli.set_version_flag("--version", CHATD_VERSION);
  std::string env_file = ".env";
  // Named, it must exist: a mistyped name would otherwise be served from the defaults (a
  // stray db.sqlite3 in place of the PostgreSQL it names). The default may be missing.
  auto* env_option = cli.add_option("--env-file", env_file,
                                    "File of KEY=VALUE settings read before the environment")
                         ->capture_default_str();
  cli.require_subcommand(1);
  // `chatd migrate --env-file F` as well as `chatd --env-file F migrate`.
  cli.fallthrough();

  auto* serve = cli.add_subcommand("serve", "Apply migrations and serve HTTP and WebSocket");
  auto* migrate = cli.add_subcommand("migrate", "Apply database migrations");
  bool list_only = false;
  migrate->add_flag("--list", list_only, "Show migrations and whether they are applied");
  auto* superuser =
      cli.add_subcommand("createsuperuser", "Create a staff user with all permissions");
  chat::app::SuperuserOptions su;
  superuser->add_option("--username", su.username, "Username (or DJANGO_SUPERUSER_USERNAME)");
  superuser->add_option("--email", su.email, "E-mail address (or DJANGO_SUPERUSER_EMAIL)");
  superuser->add_option("--password", su.password, "Password (or DJANGO_SUPERUSER_PASSWORD)");
  superuser->add_flag("--noinput,--no-input", su.no_input,
                      "Never prompt; fail when a value is missing");
  auto* change_password = cli.add_subcommand(
      "changepassword", "Change a user's password and end their sessions (asks for it twice)");
  std::optional<std::string> password_of;
  change_password->add_option("username", password_of,
                              "Whose password (default: the name of this system account)");

  CLI11_PARSE(cli, argc, argv);
  if (env_option->count() > 0 && !std::ifstream(env_file)) {
    std::fprintf(stderr, "chatd: configuration error:\n  --env-file: cannot read '%s'\n",
                 env_file.c_str());
    return 2;
  }

  chat::config::Settings settings;
  chat::config::Environment env;
  try {
    if (serve->parsed()) {
      if (!load(env_file, true, settings, env)) return 2;
      return chat::app::serve(settings);
    }
    if (!load(env_file, false, settings, env)) return 2;
    if (migrate->parsed()) return chat::app::migrate(settings, list_only);
    if (superuser->parsed()) return chat::app::create_superuser(settings, env, su);
    if (change_password->parsed()) return chat::app::change_password(settings, password_of);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chatd: %s\n", e.what());
    return 1;
  }
  return 0;
}
