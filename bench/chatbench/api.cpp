#include "api.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <stdexcept>

namespace chatbench {
namespace {

namespace json = boost::json;

constexpr const char* kPassword = "bench-Password-1";

std::int64_t id_of(const HttpResponse& r, const char* what) {
  if (r.status != 200 && r.status != 201) {
    throw std::runtime_error(std::string(what) + ": HTTP " + std::to_string(r.status) + " " +
                             r.body.substr(0, 300));
  }
  return json::parse(r.body).as_object().at("id").as_int64();
}

// One worker: takes job numbers from the shared counter until none remain.
asio::awaitable<void> worker(const Target& target, int& next, int count, std::uint64_t n,
                             std::function<asio::awaitable<void>(HttpConnection&, int)>& job) {
  auto socket = co_await connect(target, n);
  HttpConnection http(std::move(socket), target.host_header());
  while (next < count) {
    const int i = next++;
    co_await job(http, i);
  }
}

}  // namespace

asio::awaitable<void> for_each_parallel(
    const Target& target, int count, int parallel,
    std::function<asio::awaitable<void>(HttpConnection&, int)> job) {
  auto executor = co_await asio::this_coro::executor;
  int next = 0;
  int running = 0;
  std::exception_ptr failure;
  asio::steady_timer done(executor, asio::steady_timer::time_point::max());
  for (int w = 0; w < parallel && w < count; ++w) {
    ++running;
    asio::co_spawn(executor, worker(target, next, count, static_cast<std::uint64_t>(w), job),
                   [&](const std::exception_ptr& e) {
                     if (e && !failure) failure = e;
                     if (--running == 0) done.cancel();
                   });
  }
  if (running > 0) {
    boost::system::error_code ec;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (failure) std::rethrow_exception(failure);
}

asio::awaitable<std::vector<User>> register_users(const Target& target, const std::string& prefix,
                                                  int count, int connections) {
  std::vector<User> users(static_cast<std::size_t>(count));
  auto job = [&](HttpConnection& http, int i) -> asio::awaitable<void> {
    User& u = users[static_cast<std::size_t>(i)];
    u.username = prefix + std::to_string(i);
    const std::string body = json::serialize(json::object{{"username", u.username},
                                                          {"email", u.username + "@bench.example"},
                                                          {"password", kPassword}});
    auto r = co_await http.request("POST", "/api/auth/register/", "", body);
    if (r.status != 201) {
      throw std::runtime_error("register: HTTP " + std::to_string(r.status) + " " +
                               r.body.substr(0, 300));
    }
    auto doc = json::parse(r.body).as_object();
    u.id = doc.at("user").as_object().at("id").as_int64();
    u.access = std::string(doc.at("access").as_string());
  };
  co_await for_each_parallel(target, count, connections, job);
  co_return users;
}

asio::awaitable<std::int64_t> create_group(HttpConnection& http, const User& owner,
                                           const std::vector<std::int64_t>& member_ids,
                                           const std::string& name) {
  json::array ids;
  for (auto id : member_ids) {
    if (id != owner.id) ids.push_back(id);
  }
  const std::string body =
      json::serialize(json::object{{"type", "group"}, {"name", name}, {"member_ids", ids}});
  auto r = co_await http.request("POST", "/api/chats/", owner.access, body);
  co_return id_of(r, "create group");
}

asio::awaitable<std::int64_t> create_private(HttpConnection& http, const User& me,
                                             std::int64_t other) {
  const std::string body =
      json::serialize(json::object{{"type", "private"}, {"member_ids", json::array{other}}});
  auto r = co_await http.request("POST", "/api/chats/", me.access, body);
  co_return id_of(r, "create private chat");
}

}  // namespace chatbench
