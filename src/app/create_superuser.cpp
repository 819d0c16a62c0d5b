#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "app/commands.hpp"
#include "app/hash_cost.hpp"
#include "app/open_store.hpp"
#include "app/prompt.hpp"
#include "app/run_to_end.hpp"
#include "auth/credential_rules.hpp"
#include "auth/password_hasher.hpp"
#include "common/unicode.hpp"

namespace chat::app {
namespace {

std::optional<std::string> from_env(const config::Environment& env, const char* name) {
  const auto v = env.find(name);
  if (v == env.end() || v->second.empty()) return std::nullopt;
  return v->second;
}

void print_problems(const char* field, const std::vector<std::string>& problems) {
  for (const auto& p : problems) std::fprintf(stderr, "Error (%s): %s\n", field, p.c_str());
}

}  // namespace

int create_superuser(const config::Settings& s, const config::Environment& env,
                     SuperuserOptions o) {
  // Django's names for non-interactive use.
  if (!o.username) o.username = from_env(env, "DJANGO_SUPERUSER_USERNAME");
  if (!o.email) o.email = from_env(env, "DJANGO_SUPERUSER_EMAIL");
  if (!o.password) o.password = from_env(env, "DJANGO_SUPERUSER_PASSWORD");

  // One I/O context for the command: a PostgreSQL store's connections live on it.
  boost::asio::io_context io;
  auto store = open_store(s, io.get_executor());
  store->migrate();

  auto run = [&](auto awaitable) { return run_to_end(io, std::move(awaitable)); };

  try {
    for (;;) {
      if (!o.username) {
        if (o.no_input) throw std::runtime_error("--username is required with --noinput");
        o.username = std::string(unicode::trim(prompt("Username: ", false)));
      }
      auto name = unicode::is_valid_utf8(*o.username) ? auth::new_username(*o.username)
                                                      : auth::NewUsername{{}, {"Not valid UTF-8."}};
      auto& problems = name.problems;
      if (problems.empty() &&
          run(store->users().find_by_username_key(auth::username_key(name.name)))) {
        problems.emplace_back("That username is already taken.");
      }
      if (problems.empty()) {
        o.username = std::move(name.name);
        break;
      }
      print_problems("username", problems);
      if (o.no_input) return 1;
      o.username.reset();
    }
    for (;;) {
      if (!o.email) {
        if (o.no_input) throw std::runtime_error("--email is required with --noinput");
        o.email = std::string(unicode::trim(prompt("Email address: ", false)));
      }
      auto problems = auth::email_problems(*o.email);
      if (problems.empty()) break;
      print_problems("email", problems);
      if (o.no_input) return 1;
      o.email.reset();
    }
    // With --noinput Django neither asks for a password nor checks one: without one the
    // user gets an unusable password (`changepassword` sets one).
    while (!o.no_input) {
      if (!o.password) {
        std::string first = prompt("Password: ", true);
        if (prompt("Password (again): ", true) != first) {
          std::fprintf(stderr, "Error: Your passwords didn't match.\n");
          continue;
        }
        o.password = first;
      }
      auto problems = auth::password_problems(*o.password, *o.username);
      if (problems.empty()) break;
      print_problems("password", problems);
      o.password.reset();
    }
  } catch (const std::runtime_error& e) {
    std::fprintf(stderr, "Error: %s\n", e.what());
    return 1;
  }

  store::NewUser user;
  user.username = *o.username;
  user.username_key = auth::username_key(*o.username);
  user.email = auth::normalize_email(*o.email);
  user.password_hash = o.password ? auth::PasswordHasher::hash_now(*o.password, hash_cost(s))
                                  : auth::PasswordHasher::unusable_hash();
  user.is_staff = true;
  user.is_superuser = true;
  user.date_joined = now_micros();
  auto created = run(store->users().create(std::move(user)));
  if (!created) {
    std::fprintf(stderr, "Error: That username is already taken.\n");
    return 1;
  }
  std::printf("Superuser created successfully.\n");
  return 0;
}

}  // namespace chat::app
