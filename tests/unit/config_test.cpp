#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "config/dotenv.hpp"
#include "config/settings.hpp"

using namespace chat::config;

namespace {
const std::string kStrongKey(60, 'k');
std::string strong_key() {
  return kStrongKey + "abcdefg";
}
}  // namespace

TEST(Dotenv, ParsesTheOriginalProjectsFile) {
  auto r = parse_dotenv(
      "DEBUG=1\nSECRET_KEY=your-secret-key\nALLOWED_HOSTS=*\n\n# database\nDB_NAME=chat\n"
      "export REDIS_HOST=redis\nQUOTED=\"a b # c\\n\"\nSINGLE='x\\ny'\nCOMMENTED=value # note\n"
      "EMPTY=\n");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.values["DEBUG"], "1");
  EXPECT_EQ(r.values["SECRET_KEY"], "your-secret-key");
  EXPECT_EQ(r.values["ALLOWED_HOSTS"], "*");
  EXPECT_EQ(r.values["DB_NAME"], "chat");
  EXPECT_EQ(r.values["REDIS_HOST"], "redis");
  EXPECT_EQ(r.values["QUOTED"], "a b # c\n");
  EXPECT_EQ(r.values["SINGLE"], "x\\ny");
  EXPECT_EQ(r.values["COMMENTED"], "value");
  EXPECT_EQ(r.values["EMPTY"], "");
}

TEST(Dotenv, ReadsFilesAsPythonDotenvDoes) {
  // A byte order mark (Notepad), lines ended by a lone CR (old Mac editors) or CR LF,
  // and `export` followed by a tab.
  auto r = parse_dotenv("\xEF\xBB\xBFSECRET_KEY=abc\rALLOWED_HOSTS=x.example\r\nexport\tPORT=9\r");
  EXPECT_TRUE(r.errors.empty()) << ::testing::PrintToString(r.errors);
  EXPECT_EQ(r.values["SECRET_KEY"], "abc");
  EXPECT_EQ(r.values["ALLOWED_HOSTS"], "x.example");
  EXPECT_EQ(r.values["PORT"], "9");
  auto bad = parse_dotenv("A=1\rnot a setting\r");
  ASSERT_EQ(bad.errors.size(), 1U);
  EXPECT_EQ(bad.errors[0], "line 2: expected KEY=VALUE");
}

TEST(Dotenv, ReportsBadLinesByNumber) {
  auto r = parse_dotenv("GOOD=1\nnot a setting\n1BAD=2\nOPEN=\"never closed\n");
  ASSERT_EQ(r.errors.size(), 3U);
  EXPECT_EQ(r.errors[0], "line 2: expected KEY=VALUE");
  EXPECT_NE(r.errors[1].find("line 3"), std::string::npos);
  EXPECT_NE(r.errors[2].find("unterminated"), std::string::npos);
  EXPECT_EQ(r.values["GOOD"], "1");
}

TEST(Settings, DefaultsFollowSimpleJwtAndDjango) {
  auto r = load_settings({{"SECRET_KEY", strong_key()}});
  ASSERT_TRUE(r.errors.empty());
  const auto& s = r.settings;
  EXPECT_FALSE(s.debug);
  EXPECT_EQ(s.port, 8000);
  EXPECT_EQ(s.bind, "0.0.0.0");
  EXPECT_EQ(s.access_token_lifetime, 300);
  EXPECT_EQ(s.refresh_token_lifetime, 86400);
  EXPECT_FALSE(s.rotate_refresh_tokens);
  EXPECT_EQ(s.login_failures_per_user, 10);
  EXPECT_EQ(s.login_failures_per_address, 100);
  EXPECT_EQ(s.login_failure_window, 900);
  EXPECT_EQ(s.register_rate.count, 0);
  EXPECT_EQ(s.user_rate.count, 0);
  EXPECT_TRUE(s.db.host.empty());
  EXPECT_TRUE(s.redis.host.empty());
  EXPECT_EQ(s.redis.max_held_events, 10000);
}

TEST(Settings, ReadsEveryKindOfValue) {
  auto r = load_settings({{"SECRET_KEY", strong_key()},
                          {"DEBUG", "true"},
                          {"ALLOWED_HOSTS", " example.com, .chat.example ,"},
                          {"PORT", "9000"},
                          {"ACCESS_TOKEN_LIFETIME", "15m"},
                          {"REFRESH_TOKEN_LIFETIME", "7d"},
                          {"ROTATE_REFRESH_TOKENS", "yes"},
                          {"REGISTER_THROTTLE_RATE", "20/hour"},
                          {"USER_THROTTLE_RATE", "600/min"},
                          {"DB_HOST", "db"},
                          {"DB_PORT", "6432"},
                          {"REDIS_HOST", "redis"},
                          {"REDIS_MAX_HELD_EVENTS", "500"}});
  ASSERT_TRUE(r.errors.empty()) << r.errors[0];
  const auto& s = r.settings;
  EXPECT_TRUE(s.debug);
  EXPECT_EQ(s.allowed_hosts, (std::vector<std::string>{"example.com", ".chat.example"}));
  EXPECT_EQ(s.port, 9000);
  EXPECT_EQ(s.access_token_lifetime, 900);
  EXPECT_EQ(s.refresh_token_lifetime, 7 * 86400);
  EXPECT_TRUE(s.rotate_refresh_tokens);
  EXPECT_EQ(s.register_rate.count, 20);
  EXPECT_EQ(s.register_rate.seconds, 3600);
  EXPECT_EQ(s.user_rate.count, 600);
  EXPECT_EQ(s.user_rate.seconds, 60);
  EXPECT_EQ(s.db.host, "db");
  EXPECT_EQ(s.db.port, 6432);
  EXPECT_EQ(s.redis.host, "redis");
  EXPECT_EQ(s.redis.max_held_events, 500);
}

TEST(Settings, ThrottleRatesReadAsDrfWritesThem) {
  for (const auto& [text, count, seconds] :
       std::vector<std::tuple<std::string, int, std::int64_t>>{{"1/sec", 1, 1},
                                                               {"30/s", 30, 1},
                                                               {"600/min", 600, 60},
                                                               {"5/m", 5, 60},
                                                               {"20/hour", 20, 3600},
                                                               {"100/day", 100, 86400},
                                                               {"off", 0, 0},
                                                               {"", 0, 0}}) {
    auto r = load_settings({{"SECRET_KEY", strong_key()}, {"USER_THROTTLE_RATE", text}});
    ASSERT_TRUE(r.errors.empty()) << text << ": " << r.errors[0];
    EXPECT_EQ(r.settings.user_rate.count, count) << text;
    if (count > 0) {
      EXPECT_EQ(r.settings.user_rate.seconds, seconds) << text;
    }
  }
  for (const char* bad : {"lots", "5", "5/fortnight", "-1/min", "x/min", "5/"}) {
    auto r = load_settings({{"SECRET_KEY", strong_key()}, {"USER_THROTTLE_RATE", bad}});
    ASSERT_EQ(r.errors.size(), 1U) << bad;
    EXPECT_EQ(r.errors[0].rfind("USER_THROTTLE_RATE:", 0), 0U) << r.errors[0];
  }
}

TEST(Settings, NamesEveryBadValue) {
  auto r = load_settings({{"SECRET_KEY", strong_key()},
                          {"PORT", "http"},
                          {"DEBUG", "perhaps"},
                          {"ACCESS_TOKEN_LIFETIME", "5 minutes"},
                          {"REGISTER_THROTTLE_RATE", "lots"},
                          {"DB_PORT", "70000"},
                          {"REDIS_MAX_HELD_EVENTS", "0"},
                          {"LOG_LEVEL", "loud"}});
  ASSERT_EQ(r.errors.size(), 7U);
  for (const char* name : {"PORT:", "DEBUG:", "ACCESS_TOKEN_LIFETIME:", "REGISTER_THROTTLE_RATE:",
                           "DB_PORT:", "REDIS_MAX_HELD_EVENTS:", "LOG_LEVEL:"}) {
    bool found = false;
    for (const auto& e : r.errors) found = found || e.rfind(name, 0) == 0;
    EXPECT_TRUE(found) << name;
  }
}

// BIND must be an address to listen on: a host name or a typo is named at start with the
// other bad settings (exit 2), not found when the listener opens.
TEST(Settings, BindIsAnIpAddress) {
  for (const char* good : {"0.0.0.0", "127.0.0.1", "::", "::1", "fe80::1%lo"}) {
    auto r = load_settings({{"SECRET_KEY", strong_key()}, {"BIND", good}});
    EXPECT_TRUE(r.errors.empty()) << good;
    EXPECT_EQ(r.settings.bind, good);
  }
  for (const char* bad : {"localhost", "999.1.1.1", "", "0.0.0.0:8000", "::1%", "10.0.0.0/8",
                          "fe80::1%no-such-interface", "fe80::1%%"}) {
    auto r = load_settings({{"SECRET_KEY", strong_key()}, {"BIND", bad}});
    ASSERT_EQ(r.errors.size(), 1U) << bad;
    EXPECT_EQ(r.errors[0].rfind("BIND:", 0), 0U) << r.errors[0];
  }
}

TEST(Settings, AnEmptyAllowedHostsIsLocalUnderDebugAndRefusedWithout) {
  auto debug = load_settings({{"DEBUG", "1"}, {"SECRET_KEY", strong_key()}, {"ALLOWED_HOSTS", ""}});
  EXPECT_TRUE(debug.errors.empty());
  EXPECT_EQ(debug.settings.allowed_hosts,
            (std::vector<std::string>{".localhost", "127.0.0.1", "[::1]"}));
  auto live = load_settings({{"SECRET_KEY", strong_key()}, {"ALLOWED_HOSTS", " , "}});
  ASSERT_EQ(live.errors.size(), 1U);
  EXPECT_NE(live.errors[0].find("ALLOWED_HOSTS"), std::string::npos);
  // Commands that do not serve do not need it.
  EXPECT_TRUE(load_settings({{"ALLOWED_HOSTS", ""}}, false).errors.empty());
}

TEST(Settings, SecretKeyRules) {
  // DEBUG off: a key is required and must be strong.
  EXPECT_FALSE(load_settings({}).errors.empty());
  EXPECT_FALSE(load_settings({{"SECRET_KEY", "your-secret-key"}}).errors.empty());
  EXPECT_FALSE(load_settings({{"SECRET_KEY", "django-insecure-" + strong_key()}}).errors.empty());
  EXPECT_FALSE(load_settings({{"SECRET_KEY", std::string(80, 'a')}}).errors.empty());
  EXPECT_TRUE(load_settings({{"SECRET_KEY", strong_key()}}).errors.empty());
  // DEBUG on: a weak key is a warning, a missing one is replaced by a random one.
  auto weak = load_settings({{"DEBUG", "1"}, {"SECRET_KEY", "your-secret-key"}});
  EXPECT_TRUE(weak.errors.empty());
  EXPECT_FALSE(weak.warnings.empty());
  auto none = load_settings({{"DEBUG", "1"}});
  EXPECT_TRUE(none.errors.empty());
  EXPECT_TRUE(none.settings.secret_key_generated);
  EXPECT_TRUE(is_strong_secret_key(none.settings.secret_key));
  // Commands that issue no tokens do not need one.
  EXPECT_TRUE(load_settings({}, false).errors.empty());
}

TEST(Settings, SecretsAreNotEchoedInErrors) {
  auto r = load_settings({{"SECRET_KEY", strong_key()}, {"DB_PASSWORD", "x"}, {"DB_PORT", "bad"}});
  for (const auto& e : r.errors) EXPECT_EQ(e.find(strong_key()), std::string::npos);
}
