// `chatd changepassword [username]`: Django's command of that name. Asks twice for the new
// password, checks it as registration does, gives up after three tries, and ends every
// session of the user, as a password changed through the API ends the others.
#include <pwd.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <stdexcept>

#include "app/commands.hpp"
#include "app/hash_cost.hpp"
#include "app/open_store.hpp"
#include "app/prompt.hpp"
#include "app/run_to_end.hpp"
#include "auth/credential_rules.hpp"
#include "auth/password_hasher.hpp"
#include "common/time.hpp"

namespace chat::app {
namespace {

// Django's default: the name of the account running the command.
std::string login_name() {
  if (const passwd* pw = getpwuid(geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    return pw->pw_name;
  }
  return {};
}

// An empty answer: Django's command gives up at once ("aborted").
struct Aborted {};

std::string ask(const char* label) {
  std::string answer = prompt(label, true);
  if (answer.empty()) throw Aborted{};
  return answer;
}

// The new password, or nothing after three failed tries.
std::optional<std::string> ask_password(const std::string& username) {
  constexpr int kTries = 3;
  for (int tries = 0; tries < kTries; ++tries) {
    std::string first = ask("Password: ");
    if (ask("Password (again): ") != first) {
      std::printf("Passwords do not match. Please try again.\n");
      std::fflush(stdout);
      continue;
    }
    auto problems = auth::password_problems(first, username);
    if (problems.empty()) return first;
    for (const auto& p : problems) std::fprintf(stderr, "%s\n", p.c_str());
  }
  return std::nullopt;
}

}  // namespace

int change_password(const config::Settings& s, std::optional<std::string> username) {
  if (!username) username = login_name();
  boost::asio::io_context io;
  auto store = open_store(s, io.get_executor());
  store->migrate();

  auto user = run_to_end(io, store->users().find_by_username_key(auth::username_key(*username)));
  if (!user) {
    std::fprintf(stderr, "CommandError: user '%s' does not exist\n", username->c_str());
    return 1;
  }
  std::printf("Changing password for user '%s'\n", user->username.c_str());
  std::fflush(stdout);
  std::optional<std::string> password;
  try {
    password = ask_password(user->username);
  } catch (const Aborted&) {
    std::fprintf(stderr, "CommandError: aborted\n");
    return 1;
  } catch (const std::runtime_error& e) {
    std::fprintf(stderr, "Error: %s\n", e.what());
    return 1;
  }
  if (!password) {
    std::fprintf(stderr, "CommandError: Aborting password change for user '%s' after 3 attempts\n",
                 user->username.c_str());
    return 1;
  }

  store::UserChanges changes;
  changes.password_hash = auth::PasswordHasher::hash_now(*password, hash_cost(s));
  // Every session: their refresh tokens are revoked and their access tokens refused from
  // now on. Sockets already open stay open until they reconnect (no node hears this).
  changes.end_sessions = store::SessionEnd{{}, s.access_token_lifetime, now_micros()};
  auto updated = run_to_end(io, store->users().update(user->id, std::move(changes)));
  if (!updated) {
    std::fprintf(stderr, "CommandError: user '%s' does not exist\n", user->username.c_str());
    return 1;
  }
  std::printf("Password changed successfully for user '%s'\n", user->username.c_str());
  return 0;
}

}  // namespace chat::app
