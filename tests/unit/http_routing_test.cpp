#include <gtest/gtest.h>

#include "http/host_check.hpp"
#include "http/router.hpp"

using namespace chat::http;

namespace {
Handler noop() {
  return [](Request&, const RouteParams&) -> boost::asio::awaitable<Response> {
    co_return Response{};
  };
}
}  // namespace

TEST(Router, MatchesWithAndWithoutTrailingSlash) {
  Router r;
  r.add(Method::get, "/api/users/", noop());
  r.add(Method::get, "/api/users/me/", noop());
  r.add(Method::get, "/api/users/{id}/", noop());
  r.add(Method::get, "/healthz", noop());
  EXPECT_TRUE(r.match(Method::get, "/api/users/").handler);
  EXPECT_TRUE(r.match(Method::get, "/api/users").handler);
  EXPECT_TRUE(r.match(Method::get, "/healthz/").handler);
  auto me = r.match(Method::get, "/api/users/me");
  ASSERT_TRUE(me.handler);
  EXPECT_EQ(me.pattern, "/api/users/me/");
  auto byid = r.match(Method::get, "/api/users/17/");
  ASSERT_TRUE(byid.handler);
  EXPECT_EQ(byid.params.ids, std::vector<std::int64_t>{17});
  EXPECT_TRUE(r.match(Method::head, "/api/users/17/").handler);
}

TEST(Router, RefusesBadIdsAndPaths) {
  Router r;
  r.add(Method::get, "/api/users/{id}/", noop());
  for (const char* bad : {"/api/users/-1/", "/api/users/+1/", "/api/users/abc/", "/api/users/1.5/",
                          "/api/users/99999999999999999999/", "/api/users//", "//api/users/1/",
                          "/api/users/1/x/", ""}) {
    EXPECT_FALSE(r.match(Method::get, bad).path_found) << bad;
  }
}

TEST(Router, TakesIdsAsDjangosIntConverterDoes) {
  Router r;
  r.add(Method::get, "/api/users/{id}/", noop());
  EXPECT_EQ(r.match(Method::get, "/api/users/0/").params.ids, std::vector<std::int64_t>{0});
  EXPECT_EQ(r.match(Method::get, "/api/users/007/").params.ids, std::vector<std::int64_t>{7});
}

TEST(Router, ReportsAllowedMethods) {
  Router r;
  r.add(Method::get, "/api/users/me/", noop());
  r.add(Method::patch, "/api/users/me/", noop());
  auto m = r.match(Method::del, "/api/users/me/");
  EXPECT_TRUE(m.path_found);
  EXPECT_FALSE(m.handler);
  EXPECT_EQ(m.allowed, (std::vector<Method>{Method::get, Method::patch}));
}

TEST(HostCheck, FollowsAllowedHostsPatterns) {
  const std::vector<std::string> allowed{"localhost", ".example.com", "[::1]"};
  EXPECT_TRUE(host_allowed("localhost", allowed));
  EXPECT_TRUE(host_allowed("LOCALHOST:8000", allowed));
  EXPECT_TRUE(host_allowed("example.com", allowed));
  EXPECT_TRUE(host_allowed("chat.example.com", allowed));
  EXPECT_TRUE(host_allowed("[::1]:8000", allowed));
  EXPECT_FALSE(host_allowed("evilexample.com", allowed));
  EXPECT_FALSE(host_allowed("example.com.evil.org", allowed));
  EXPECT_FALSE(host_allowed("", allowed));
  EXPECT_FALSE(host_allowed("localhost:80:80", allowed));
  EXPECT_FALSE(host_allowed("local host", allowed));
  EXPECT_FALSE(host_allowed("localhost:", allowed));
  EXPECT_TRUE(host_allowed("anything.org", {"*"}));
  EXPECT_FALSE(host_allowed("bad/host", {"*"}));
}
