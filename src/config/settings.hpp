// Every setting chatd reads, with the original project's names where it had them
// (DEBUG, SECRET_KEY, ALLOWED_HOSTS, DB_*, REDIS_*) and SimpleJWT's defaults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace chat::config {

struct DatabaseSettings {
  // Empty host: the embedded SQLite store in `sqlite_path`.
  std::string host;
  int port = 5432;
  std::string name = "chat";
  std::string user = "chat";
  std::string password;
  std::string sqlite_path = "db.sqlite3";
  std::string sqlite_synchronous = "NORMAL";  // NORMAL or FULL (see README, durability)
  int read_connections = 4;
  // How long SQLite search walks everyone's matches for a caller in many chats before it
  // names them, per index query naming them would take (SqliteChatStore::search); 0: names
  // them at once. Not a setting: tests set 0 to take that way.
  int sqlite_search_walk_micros = 1000;
  int pool_size = 16;                     // PostgreSQL connections per node
  int timeout_seconds = 30;               // PostgreSQL silent this long: the call fails
  std::string synchronous_commit = "on";  // PostgreSQL's, per connection (README, durability)
};

struct RedisSettings {
  std::string host;  // empty: the in-process broker
  int port = 6379;
  std::string prefix = "chat:";  // of every key and channel, so deployments can share a server
  // Live events a node keeps while it catches up from the log; past it they are dropped and
  // read from the log again (RedisBroker), so a database that stays away costs no memory.
  int max_held_events = 10000;
};

struct PresenceSettings {
  int ttl_seconds = 60;   // a dead node's users are shown offline after this long at most
  int grace_seconds = 5;  // between a user's last socket closing and "offline" going out
};

struct ThrottleRate {
  int count = 0;             // 0: not throttled
  std::int64_t seconds = 0;  // window
};

struct Settings {
  bool debug = false;
  std::string secret_key;
  bool secret_key_generated = false;  // DEBUG without SECRET_KEY: a random per-process key
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> trusted_proxies;  // peers whose X-Forwarded-For is believed

  std::string bind = "0.0.0.0";
  int port = 8000;
  int threads = 0;  // 0: one per core
  std::size_t max_body_bytes = std::size_t{1024} * 1024;
  int request_timeout_seconds = 30;
  int keepalive_timeout_seconds = 75;

  // Folder of the web pages (admin/, docs/); empty: found beside the executable or in the
  // working folder. Swagger UI's files come from node_modules/swagger-ui-dist beside it.
  std::string web_root;

  DatabaseSettings db;
  RedisSettings redis;
  PresenceSettings presence;

  std::int64_t access_token_lifetime = 300;     // seconds, SimpleJWT: 5 minutes
  std::int64_t refresh_token_lifetime = 86400;  // seconds, SimpleJWT: 1 day
  bool rotate_refresh_tokens = false;           // SimpleJWT: off

  int login_failures_per_user = 10;         // per username and address
  int login_failures_per_address = 100;     // per address
  std::int64_t login_failure_window = 900;  // seconds
  ThrottleRate register_rate;               // off unless REGISTER_THROTTLE_RATE is set
  ThrottleRate user_rate;                   // off unless USER_THROTTLE_RATE is set

  std::int64_t event_retention = std::int64_t{7} * 86400;  // seconds of event log kept for resume

  std::vector<std::string> allowed_origins;  // empty: same origin only; "*": any
  std::size_t ws_max_frame_bytes = std::size_t{64} * 1024;
  int ws_events_per_second = 30;
  int ws_event_burst = 60;
  int ws_max_sockets_per_user = 16;
  int ws_max_queued_frames = 4096;
  std::int64_t ws_max_queued_bytes = 8LL * 1024 * 1024;
  std::int64_t ws_idle_timeout = 60;  // seconds
  int shutdown_grace_seconds = 8;

  int hasher_threads = 2;
  // Argon2id cost of new hashes (verification reads the cost from each hash). Lower only
  // for load tests that register thousands of users.
  std::int64_t password_hash_memory_kib = std::int64_t{19} * 1024;
  std::int64_t password_hash_ops = 2;
  std::string log_level = "info";
  std::string log_format = "text";
};

// The variables a process sees: the .env file's values overlaid by the real environment
// (a variable set in the environment wins, as with python-dotenv and Docker Compose).
using Environment = std::map<std::string, std::string>;

struct LoadResult {
  Settings settings;
  std::vector<std::string> errors;    // "PORT: ..." one per bad value; start-up must stop
  std::vector<std::string> warnings;  // printed, start-up goes on
};

// Reads the .env file at `dotenv_path` (a missing file is not an error) and the process
// environment.
Environment read_environment(const std::string& dotenv_path, std::vector<std::string>& errors);

// `for_serving`: the SECRET_KEY rules apply (commands that issue no tokens skip them).
LoadResult load_settings(const Environment& env, bool for_serving = true);

// Django's own test of a strong key (check W009): 50+ characters, 5+ distinct, and not
// the "django-insecure-" placeholder.
bool is_strong_secret_key(const std::string& key);

}  // namespace chat::config
