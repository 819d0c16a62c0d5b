#include "config/settings.hpp"

#include <sodium.h>

#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "config/dotenv.hpp"

extern char** environ;  // NOLINT: POSIX

namespace chat::config {
namespace {

std::optional<std::int64_t> parse_duration(const std::string& v) {
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{}) return std::nullopt;
  std::string unit(p, v.data() + v.size());
  std::int64_t mult = 0;
  if (unit.empty() || unit == "s") {
    mult = 1;
  } else if (unit == "m") {
    mult = 60;
  } else if (unit == "h") {
    mult = 3600;
  } else if (unit == "d") {
    mult = 86400;
  } else {
    return std::nullopt;
  }
  // "106751991167301d" overflowed here (undefined; a larger count can wrap into the
  // accepted range, "144115188075855873d" read as one day): too large is not a duration.
  if (n > std::numeric_limits<std::int64_t>::max() / mult ||
      n < std::numeric_limits<std::int64_t>::min() / mult) {
    return std::nullopt;
  }
  return n * mult;
}

// Reads settings one by one and records a message naming each variable that is wrong.
class Reader {
 public:
  Reader(const Environment& env, LoadResult& out) : env_(env), out_(out) {}

  const std::string* raw(const std::string& name) const {
    auto it = env_.find(name);
    return it == env_.end() ? nullptr : &it->second;
  }

  void string(const std::string& name, std::string& target) const {
    if (const auto* v = raw(name)) target = *v;
  }

  void boolean(const std::string& name, bool& target) {
    const auto* v = raw(name);
    if (v == nullptr || v->empty()) return;
    std::string s = lower(*v);
    if (s == "1" || s == "true" || s == "yes" || s == "on") {
      target = true;
    } else if (s == "0" || s == "false" || s == "no" || s == "off") {
      target = false;
    } else {
      fail(name, "expected 1/0, true/false, yes/no or on/off", *v);
    }
  }

  template <class Int>
  void integer(const std::string& name, Int& target, long long min, long long max) {
    const auto* v = raw(name);
    if (v == nullptr || v->empty()) return;
    long long parsed = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), parsed);
    if (ec != std::errc{} || p != v->data() + v->size() || parsed < min || parsed > max) {
      fail(name, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max),
           *v);
      return;
    }
    target = static_cast<Int>(parsed);
  }

  // Seconds, or a number with s/m/h/d: "300", "5m", "1d".
  void duration(const std::string& name, std::int64_t& target, std::int64_t min, std::int64_t max) {
    const auto* v = raw(name);
    if (v == nullptr || v->empty()) return;
    auto parsed = parse_duration(*v);
    if (!parsed || *parsed < min || *parsed > max) {
      fail(name,
           "expected a duration in seconds, or with a unit s/m/h/d (e.g. 300, 5m, 1d), from " +
               std::to_string(min) + "s to " + std::to_string(max) + "s",
           *v);
      return;
    }
    target = *parsed;
  }

  // DRF's throttle rate syntax: "20/hour", "5/min", "100/day"; "" or "off" disables.
  void rate(const std::string& name, ThrottleRate& target) {
    const auto* v = raw(name);
    if (v == nullptr || v->empty() || lower(*v) == "off" || *v == "0") return;
    const auto slash = v->find('/');
    int count = 0;
    if (slash != std::string::npos) {
      auto [p, ec] = std::from_chars(v->data(), v->data() + slash, count);
      if (ec == std::errc{} && p == v->data() + slash && count > 0) {
        const std::string period = lower(v->substr(slash + 1));
        std::int64_t seconds = 0;
        if (!period.empty()) {
          switch (period[0]) {
            case 's':
              seconds = 1;
              break;
            case 'm':
              seconds = 60;
              break;
            case 'h':
              seconds = 3600;
              break;
            case 'd':
              seconds = 86400;
              break;
            default:
              break;
          }
        }
        if (seconds > 0) {
          target = {count, seconds};
          return;
        }
      }
    }
    fail(name, "expected a rate like 20/hour, 5/minute or 100/day, or off", *v);
  }

  void list(const std::string& name, std::vector<std::string>& target) const {
    const auto* v = raw(name);
    if (v == nullptr) return;
    target.clear();
    std::stringstream ss(*v);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (!item.empty()) target.push_back(item);
    }
  }

  void fail(const std::string& name, const std::string& why, const std::string& value) {
    std::string shown = value.size() > 40 ? value.substr(0, 40) + "..." : value;
    // Secrets are never echoed back.
    if (name.find("SECRET") != std::string::npos || name.find("PASSWORD") != std::string::npos) {
      shown = "<hidden>";
    }
    out_.errors.push_back(name + ": " + why + " (got '" + shown + "')");
  }

  static std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  }

 private:
  const Environment& env_;
  LoadResult& out_;
};

// An IPv4 or IPv6 address as written; with `scoped`, an IPv6 one may name an interface of
// this host, by name or number (`fe80::1%eth0`).
bool is_ip_address(const std::string& text, bool scoped) {
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return true;
  const auto percent = scoped ? text.find('%') : std::string::npos;
  const std::string address = text.substr(0, percent);
  if (inet_pton(AF_INET6, address.c_str(), buf) != 1) return false;
  if (percent == std::string::npos) return true;
  const std::string scope = text.substr(percent + 1);
  if (!scope.empty() && scope.find_first_not_of("0123456789") == std::string::npos) return true;
  return !scope.empty() && if_nametoindex(scope.c_str()) != 0;
}

std::string random_key() {
  static const char alphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#%^&*(-_=+)";
  std::string key;
  for (int i = 0; i < 64; ++i) key += alphabet[randombytes_uniform(sizeof alphabet - 1)];
  return key;
}

}  // namespace

bool is_strong_secret_key(const std::string& key) {
  std::set<char> distinct(key.begin(), key.end());
  return key.size() >= 50 && distinct.size() >= 5 && key.rfind("django-insecure-", 0) != 0;
}

Environment read_environment(const std::string& dotenv_path, std::vector<std::string>& errors) {
  Environment env;
  std::ifstream in(dotenv_path, std::ios::binary);
  if (in) {
    std::stringstream buf;
    buf << in.rdbuf();
    auto parsed = parse_dotenv(buf.str());
    for (auto& e : parsed.errors) errors.push_back(dotenv_path + ": " + std::move(e));
    env = std::move(parsed.values);
  }
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
  }
  return env;
}

LoadResult load_settings(const Environment& env, bool for_serving) {
  LoadResult out;
  Settings& s = out.settings;
  Reader r(env, out);

  r.boolean("DEBUG", s.debug);
  r.string("SECRET_KEY", s.secret_key);
  s.allowed_hosts = {"localhost", "127.0.0.1", "[::1]"};
  r.list("ALLOWED_HOSTS", s.allowed_hosts);
  if (s.allowed_hosts.empty()) {
    // Set, but to nothing. Django then allows the local names under DEBUG, and refuses to
    // serve without it; here every request but the probes would be a 400, silently.
    if (s.debug) {
      s.allowed_hosts = {".localhost", "127.0.0.1", "[::1]"};
    } else if (for_serving) {
      r.fail("ALLOWED_HOSTS", "may not be empty when DEBUG is off", "");
    }
  }
  r.list("TRUSTED_PROXIES", s.trusted_proxies);
  // Matched against the peer's address as written, so only addresses can ever match: a
  // range or a host name would trust nobody, and every client would count as the proxy
  // (one client's failed logins locking a username for all).
  for (const auto& proxy : s.trusted_proxies) {
    if (!is_ip_address(proxy, false)) {
      r.fail("TRUSTED_PROXIES",
             "expected IP addresses, comma-separated (ranges and host names are not read)", proxy);
    }
  }

  r.string("BIND", s.bind);
  if (!is_ip_address(s.bind, true)) {
    r.fail("BIND", "expected an IP address to listen on (0.0.0.0, ::, 127.0.0.1...)", s.bind);
  }
  r.integer("PORT", s.port, 1, 65535);
  r.integer("THREADS", s.threads, 0, 256);
  r.integer("MAX_BODY_BYTES", s.max_body_bytes, 1024, 64LL * 1024 * 1024);
  r.integer("REQUEST_TIMEOUT", s.request_timeout_seconds, 1, 3600);
  r.integer("KEEPALIVE_TIMEOUT", s.keepalive_timeout_seconds, 1, 3600);

  r.string("WEB_ROOT", s.web_root);
  r.string("DB_HOST", s.db.host);
  r.integer("DB_PORT", s.db.port, 1, 65535);
  r.string("DB_NAME", s.db.name);
  r.string("DB_USER", s.db.user);
  r.string("DB_PASSWORD", s.db.password);
  r.string("SQLITE_PATH", s.db.sqlite_path);
  if (s.db.sqlite_path.empty()) r.fail("SQLITE_PATH", "may not be empty", "");
  r.string("SQLITE_SYNCHRONOUS", s.db.sqlite_synchronous);
  s.db.sqlite_synchronous = Reader::lower(s.db.sqlite_synchronous);
  if (s.db.sqlite_synchronous != "normal" && s.db.sqlite_synchronous != "full") {
    r.fail("SQLITE_SYNCHRONOUS", "expected NORMAL or FULL", s.db.sqlite_synchronous);
  }
  r.integer("DB_READ_CONNECTIONS", s.db.read_connections, 1, 64);
  r.integer("DB_POOL_SIZE", s.db.pool_size, 1, 1000);
  r.integer("DB_TIMEOUT", s.db.timeout_seconds, 1, 86400);
  r.string("DB_SYNCHRONOUS_COMMIT", s.db.synchronous_commit);
  s.db.synchronous_commit = Reader::lower(s.db.synchronous_commit);
  if (s.db.synchronous_commit != "on" && s.db.synchronous_commit != "off" &&
      s.db.synchronous_commit != "local" && s.db.synchronous_commit != "remote_write" &&
      s.db.synchronous_commit != "remote_apply") {
    r.fail("DB_SYNCHRONOUS_COMMIT", "expected on, off, local, remote_write or remote_apply",
           s.db.synchronous_commit);
  }
  r.string("REDIS_HOST", s.redis.host);
  r.integer("REDIS_PORT", s.redis.port, 1, 65535);
  r.string("REDIS_PREFIX", s.redis.prefix);
  r.integer("REDIS_MAX_HELD_EVENTS", s.redis.max_held_events, 1, 10'000'000);
  r.integer("PRESENCE_TTL", s.presence.ttl_seconds, 2, 86400);
  r.integer("PRESENCE_GRACE", s.presence.grace_seconds, 0, 3600);

  r.duration("ACCESS_TOKEN_LIFETIME", s.access_token_lifetime, 1, 365LL * 86400);
  r.duration("REFRESH_TOKEN_LIFETIME", s.refresh_token_lifetime, 1, 3650LL * 86400);
  r.boolean("ROTATE_REFRESH_TOKENS", s.rotate_refresh_tokens);

  r.integer("LOGIN_FAILURES_PER_USER", s.login_failures_per_user, 1, 1'000'000);
  r.integer("LOGIN_FAILURES_PER_ADDRESS", s.login_failures_per_address, 1, 1'000'000);
  r.duration("LOGIN_FAILURE_WINDOW", s.login_failure_window, 1, 30LL * 86400);
  r.rate("REGISTER_THROTTLE_RATE", s.register_rate);
  r.rate("USER_THROTTLE_RATE", s.user_rate);

  r.duration("EVENT_RETENTION", s.event_retention, 60, 3650LL * 86400);
  r.list("ALLOWED_ORIGINS", s.allowed_origins);
  r.integer("WS_MAX_FRAME_BYTES", s.ws_max_frame_bytes, 128, 16LL * 1024 * 1024);
  r.integer("WS_EVENTS_PER_SECOND", s.ws_events_per_second, 1, 100'000);
  r.integer("WS_EVENT_BURST", s.ws_event_burst, 1, 1'000'000);
  r.integer("WS_MAX_SOCKETS_PER_USER", s.ws_max_sockets_per_user, 1, 10'000);
  r.integer("WS_MAX_QUEUED_FRAMES", s.ws_max_queued_frames, 16, 10'000'000);
  r.integer("WS_MAX_QUEUED_BYTES", s.ws_max_queued_bytes, 64LL * 1024, 1LL << 30);
  r.duration("WS_IDLE_TIMEOUT", s.ws_idle_timeout, 2, 86400);
  r.integer("SHUTDOWN_GRACE", s.shutdown_grace_seconds, 0, 60);
  r.integer("HASHER_THREADS", s.hasher_threads, 1, 64);
  r.integer("PASSWORD_HASH_MEMORY_KIB", s.password_hash_memory_kib, 8, 4LL * 1024 * 1024);
  r.integer("PASSWORD_HASH_OPS", s.password_hash_ops, 1, 100);
  r.string("LOG_LEVEL", s.log_level);
  s.log_level = Reader::lower(s.log_level);
  static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "off"};
  if (!levels.contains(s.log_level)) {
    r.fail("LOG_LEVEL", "expected trace, debug, info, warn, error or off", s.log_level);
  }
  r.string("LOG_FORMAT", s.log_format);
  s.log_format = Reader::lower(s.log_format);
  if (s.log_format != "text" && s.log_format != "json") {
    r.fail("LOG_FORMAT", "expected text or json", s.log_format);
  }

  if (s.threads == 0)
    s.threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));

  if (!for_serving) return out;
  if (s.secret_key.empty()) {
    if (s.debug) {
      s.secret_key = random_key();
      s.secret_key_generated = true;
      out.warnings.push_back(
          "SECRET_KEY is not set: using a random key, so tokens stop working at restart");
    } else {
      out.errors.push_back(
          "SECRET_KEY: must be set when DEBUG is off (50+ characters, 5+ different ones)");
    }
  } else if (!is_strong_secret_key(s.secret_key)) {
    if (s.debug) {
      out.warnings.push_back("SECRET_KEY is weak; it is accepted only because DEBUG is on");
    } else {
      out.errors.push_back(
          "SECRET_KEY: too weak for DEBUG off: use 50+ characters with 5+ different ones, not "
          "starting with 'django-insecure-'");
    }
  }
  return out;
}

}  // namespace chat::config
