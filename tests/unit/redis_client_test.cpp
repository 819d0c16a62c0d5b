// RedisClient and RedisSubscriber against a real redis-server. Each test starts its own on a
// free loopback port, as a child process, so that it can kill the server and start it again.
// Every wait is bounded: a broken client fails a test instead of hanging the suite.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redis/redis_client.hpp"
#include "redis/redis_subscriber.hpp"

using namespace chat::redis;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kWait = 10s;

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string dirs(path);
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(start, end - start) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// The pid of the Redis server listening on 127.0.0.1:port (from INFO), 0 when it answers
// without one (an error such as NOAUTH), -1 when nothing accepts connections there.
pid_t listener_pid(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval wait{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  const std::string ask = "INFO server\r\n";
  ::send(fd, ask.data(), ask.size(), MSG_NOSIGNAL);
  std::string got;
  char buf[4096];
  for (;;) {
    const auto at = got.find("process_id:");
    if (at != std::string::npos && got.find("\r\n", at) != std::string::npos) break;
    if (!got.empty() && got[0] == '-' && got.find("\r\n") != std::string::npos) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const auto at = got.find("process_id:");
  return at == std::string::npos ? 0 : static_cast<pid_t>(std::atol(got.c_str() + at + 11));
}

// A redis-server child process on 127.0.0.1:port, without persistence.
class RedisServer {
 public:
  explicit RedisServer(int port, std::vector<std::string> extra = {})
      : port_(port), extra_(std::move(extra)) {}
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  [[nodiscard]] int port() const { return port_; }

  // The child's scheduling state from /proc ("T": stopped), for failure messages.
  [[nodiscard]] std::string state() const {
    std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto paren = line.rfind(')');
    return paren == std::string::npos || paren + 2 >= line.size() ? "gone"
                                                                  : line.substr(paren + 2, 1);
  }

  // Starts it and waits until it accepts connections.
  bool start() {
    // Everything the child needs is prepared before fork(): only async-signal-safe calls
    // may follow it in a threaded process.
    const std::string port = std::to_string(port_);
    std::vector<const char*> argv{"redis-server", "--bind",      "127.0.0.1", "--port",
                                  port.c_str(),   "--save",      "",          "--appendonly",
                                  "no",           "--daemonize", "no"};
    for (const auto& arg : extra_) argv.push_back(arg.c_str());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      // A process group of its own: paused (pause()) in the tests' group, when that group is
      // orphaned (ctest run from a background job whose shell has gone), the kernel would
      // resume it with SIGCONT (and a SIGHUP Redis ignores) whenever a process of the group
      // exited, and a test waiting for its silence would get answers.
      ::setpgid(0, 0);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      // The test's sockets must not live on in the server (a closed client connection
      // would stay open).
      ::close_range(3, ~0U, 0);
      ::execvp("redis-server", const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    if (pid_ < 0) return false;
    const auto deadline = Clock::now() + kWait;
    while (Clock::now() < deadline) {
      // The server there must be this child: with tests running in parallel, another
      // test's server may have taken the port, and this one then exits; a test pausing it
      // would pause nothing while the other answered.
      const pid_t listener = listener_pid(port_);
      if (listener == pid_) return true;
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {  // died: port taken?
        pid_ = -1;
        return false;
      }
      if (listener > 0) {  // another server answers there
        kill();
        return false;
      }
      if (listener == 0) return true;  // this child runs, and a server answers (with auth)
      std::this_thread::sleep_for(20ms);
    }
    kill();
    return false;
  }

  // SIGSTOP and SIGCONT: the server hangs with every connection open, as a frozen host
  // would, and comes back. pause() returns once the server has stopped: kill() only queues
  // the signal, and a server still running could answer a command sent right after it
  // (a test expecting silence then waited for a timeout that never came).
  void pause() {
    ::kill(pid_, SIGSTOP);
    int status = 0;
    pid_t got = -1;
    do {
      got = ::waitpid(pid_, &status, WUNTRACED);
    } while (got < 0 && errno == EINTR);
    if (got == pid_ && !WIFSTOPPED(status)) pid_ = -1;  // it had exited: reaped now
  }
  void resume() const { ::kill(pid_, SIGCONT); }

  // SIGKILL: the server gets no chance to say goodbye.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  int port_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

// What callbacks saw, from any thread.
class Recorder {
 public:
  void add(std::string item) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(item));
    }
    changed_.notify_all();
  }
  [[nodiscard]] std::vector<std::string> items() const {
    std::lock_guard lock(mutex_);
    return items_;
  }
  [[nodiscard]] std::size_t count(const std::string& item) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count(items_.begin(), items_.end(), item));
  }
  bool wait_for_count(const std::string& item, std::size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] {
      return static_cast<std::size_t>(std::count(items_.begin(), items_.end(), item)) >= n;
    });
  }
  bool wait_for_size(std::size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return items_.size() >= n; });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> items_;
};

bool eventually(const std::function<bool()>& condition) {
  const auto deadline = Clock::now() + kWait;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The coroutines below name every argument before co_await (g++ 12, see README).

asio::awaitable<Reply> run_command(std::shared_ptr<RedisClient> client,
                                   std::vector<std::string> args) {
  auto reply = co_await client->command(std::move(args));
  co_return reply;
}

// "unavailable", "reply error: ..." or "ok".
asio::awaitable<std::string> outcome(std::shared_ptr<RedisClient> client,
                                     std::vector<std::string> args) {
  std::string result = "ok";
  try {
    co_await client->command(std::move(args));
  } catch (const Unavailable&) {
    result = "unavailable";
  } catch (const ReplyError& e) {
    result = std::string("reply error: ") + e.what();
  }
  co_return result;
}

// As outcome(), but keeps no reference to the client: once command() has returned, only
// the operation itself holds on to the connection. Counts the commands started.
asio::awaitable<std::string> outcome_unowned(RedisClient* client, std::vector<std::string> args,
                                             std::atomic<int>* started) {
  std::string result = "ok";
  try {
    auto operation = client->command(std::move(args));
    ++*started;
    co_await std::move(operation);
  } catch (const Unavailable&) {
    result = "unavailable";
  }
  co_return result;
}

class Redis : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!on_path("redis-server")) GTEST_SKIP() << "redis-server is not on PATH";
    for (int attempt = 0; attempt < 3 && !server_; ++attempt) {
      auto server = std::make_unique<RedisServer>(free_port());
      if (server->start()) server_ = std::move(server);
    }
    ASSERT_TRUE(server_) << "redis-server did not start";
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    for (auto& c : clients_) c->stop();
    for (auto& s : subscribers_) s->stop();
    work_.reset();
    if (threads_.empty()) return;
    // With everything stopped, nothing may be left to do: the loop runs dry by itself.
    if (!eventually([this] { return io_.stopped(); })) {
      ADD_FAILURE() << "work was left on the I/O context after stop()";
      io_.stop();
    }
    for (auto& t : threads_) t.join();
  }

  // Tests that hold the connection with a BLPOP pass a reply timeout longer than it.
  std::shared_ptr<RedisClient> make_client(int port = 0, std::chrono::milliseconds timeout = 2s) {
    auto c = RedisClient::create(io_.get_executor(), "127.0.0.1",
                                 port != 0 ? port : server_->port(), timeout);
    clients_.push_back(c);
    return c;
  }

  std::shared_ptr<RedisSubscriber> make_subscriber(RedisSubscriber::OnMessage on_message) {
    auto s = RedisSubscriber::create(io_.get_executor(), "127.0.0.1", server_->port(),
                                     std::move(on_message));
    subscribers_.push_back(s);
    return s;
  }

  template <class T>
  std::future<T> spawn(asio::awaitable<T> work) {
    return asio::co_spawn(io_, std::move(work), asio::use_future);
  }

  // Runs a coroutine on the loop and returns its result, failing after kWait.
  template <class T>
  T run(asio::awaitable<T> work) {
    auto result = spawn(std::move(work));
    if (result.wait_for(kWait) != std::future_status::ready) {
      throw std::runtime_error("timed out waiting for a coroutine");
    }
    return result.get();
  }

  Reply command(const std::shared_ptr<RedisClient>& client, std::vector<std::string> args) {
    return run(run_command(client, std::move(args)));
  }

  // Asks on a connection of its own: a blocked one answers nothing more.
  bool wait_until_blocked(std::size_t clients) {
    auto probe = make_client();
    probe->start();
    if (!eventually([&] { return probe->connected(); })) return false;
    const std::string expected = "blocked_clients:" + std::to_string(clients) + "\r";
    return eventually([&] {
      return command(probe, {"INFO", "clients"}).str.find(expected) != std::string::npos;
    });
  }

  // Callbacks record here rather than into locals of a test body: the clients live until
  // TearDown.
  RedisSubscriber::OnMessage record_messages() {
    return [this](const std::string& channel, const std::string& payload) {
      received_.add(channel + "/" + payload);
    };
  }

  asio::io_context io_;
  Recorder received_;
  Recorder client_states_;
  Recorder sub_states_;
  std::atomic<int> messages_{0};
  std::atomic<int> started_{0};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  std::unique_ptr<RedisServer> server_;
  std::vector<std::shared_ptr<RedisClient>> clients_;
  std::vector<std::shared_ptr<RedisSubscriber>> subscribers_;
};

// Subscribes and waits for the confirmation.
bool subscribe_and_wait(RedisSubscriber& s, std::vector<std::string> channels) {
  auto confirmed = std::make_shared<std::promise<void>>();
  auto done = confirmed->get_future();
  s.subscribe(std::move(channels), [confirmed] { confirmed->set_value(); });
  return done.wait_for(kWait) == std::future_status::ready;
}

}  // namespace

TEST_F(Redis, CommandsReturnEveryKindOfReply) {
  auto c = make_client();
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));

  const std::string binary("v\0\r\nw", 5);
  Reply set = command(c, {"SET", "k", binary});
  EXPECT_EQ(set.type, Reply::Type::status);
  EXPECT_EQ(set.str, "OK");

  Reply get = command(c, {"GET", "k"});
  EXPECT_EQ(get.type, Reply::Type::string);
  EXPECT_EQ(get.str, binary);

  EXPECT_EQ(command(c, {"GET", "missing"}).type, Reply::Type::nil);

  Reply incr = command(c, {"INCR", "n"});
  EXPECT_EQ(incr.type, Reply::Type::integer);
  EXPECT_EQ(incr.integer, 1);
  EXPECT_EQ(command(c, {"INCRBY", "n", "41"}).integer, 42);

  command(c, {"RPUSH", "list", "a", "", "c"});
  Reply range = command(c, {"LRANGE", "list", "0", "-1"});
  ASSERT_EQ(range.type, Reply::Type::array);
  ASSERT_EQ(range.elements.size(), 3U);
  EXPECT_EQ(range.elements[0].str, "a");
  EXPECT_EQ(range.elements[1].str, "");
  EXPECT_EQ(range.elements[1].type, Reply::Type::string);
  EXPECT_EQ(range.elements[2].str, "c");
  EXPECT_EQ(command(c, {"LRANGE", "nothing", "0", "-1"}).elements.size(), 0U);

  // Nested arrays, with an error and a nil inside, come back as elements.
  command(c, {"MULTI"});
  command(c, {"GET", "k"});
  command(c, {"INCR", "k"});
  command(c, {"GET", "missing"});
  Reply exec = command(c, {"EXEC"});
  ASSERT_EQ(exec.type, Reply::Type::array);
  ASSERT_EQ(exec.elements.size(), 3U);
  EXPECT_EQ(exec.elements[0].str, binary);
  EXPECT_EQ(exec.elements[1].type, Reply::Type::error);
  EXPECT_EQ(exec.elements[2].type, Reply::Type::nil);

  EXPECT_EQ(run(outcome(c, {"INCR", "k"})),
            "reply error: ERR value is not an integer or out of range");
  EXPECT_EQ(run(outcome(c, {"NOSUCHCOMMAND"})).rfind("reply error: ERR unknown command", 0), 0U);
  // The connection is still usable after error replies.
  EXPECT_EQ(command(c, {"PING"}).str, "PONG");

  EXPECT_THROW(command(c, {}), std::invalid_argument);
  EXPECT_THROW(command(c, {"subscribe", "x"}), std::invalid_argument);
}

TEST_F(Redis, LargeValuesAndPayloadsArriveWhole) {
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);

  auto s = make_subscriber(record_messages());
  s->start();
  ASSERT_TRUE(subscribe_and_wait(*s, {"big"}));
  auto c = make_client();
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));

  EXPECT_EQ(command(c, {"SET", "big", big}).str, "OK");
  EXPECT_EQ(command(c, {"GET", "big"}).str, big);

  EXPECT_EQ(command(c, {"PUBLISH", "big", big}).integer, 1);
  ASSERT_TRUE(received_.wait_for_size(1));
  const auto got = received_.items();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0].size(), big.size() + 4);
  EXPECT_TRUE(got[0] == "big/" + big);
}

asio::awaitable<int> increments(std::shared_ptr<RedisClient> client, int id, int rounds) {
  int mismatches = 0;
  for (int i = 0; i < rounds; ++i) {
    std::vector<std::string> incr{"INCR", "counter"};
    co_await client->command(std::move(incr));
    const std::string key = "key:" + std::to_string(id);
    const std::string value = std::to_string(id) + ":" + std::to_string(i);
    std::vector<std::string> set{"SET", key, value};
    co_await client->command(std::move(set));
    std::vector<std::string> get{"GET", key};
    auto reply = co_await client->command(std::move(get));
    if (reply.str != value) ++mismatches;
  }
  co_return mismatches;
}

TEST_F(Redis, ManyConcurrentCommandsFromSeveralThreads) {
  auto c = make_client();
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));

  constexpr int kThreads = 4;
  constexpr int kPerThread = 4;
  constexpr int kRounds = 100;
  std::mutex mutex;
  std::vector<std::future<int>> results;
  std::vector<std::thread> spawners;
  for (int t = 0; t < kThreads; ++t) {
    spawners.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        auto f = spawn(increments(c, t * kPerThread + k, kRounds));
        std::lock_guard lock(mutex);
        results.push_back(std::move(f));
      }
    });
  }
  for (auto& t : spawners) t.join();
  for (auto& r : results) {
    ASSERT_EQ(r.wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(r.get(), 0);
  }
  Reply total = command(c, {"GET", "counter"});
  EXPECT_EQ(total.str, std::to_string(kThreads * kPerThread * kRounds));
}

TEST_F(Redis, CommandWhileDisconnectedThrowsUnavailableAtOnce) {
  auto c = make_client(free_port());                    // nobody listens there
  EXPECT_EQ(run(outcome(c, {"PING"})), "unavailable");  // not started yet
  c->start();
  std::this_thread::sleep_for(300ms);  // a few connection attempts fail meanwhile
  EXPECT_FALSE(c->connected());
  const auto started = Clock::now();
  EXPECT_EQ(run(outcome(c, {"PING"})), "unavailable");
  EXPECT_LT(Clock::now() - started, 500ms);
  c->send({"PUBLISH", "x", "dropped"});  // silently dropped
}

TEST_F(Redis, SubscriberGetsMessagesInOrder) {
  auto s = make_subscriber(record_messages());
  s->on_state([this](bool ready) { sub_states_.add(ready ? "ready" : "lost"); });
  s->start();
  ASSERT_TRUE(subscribe_and_wait(*s, {"room:1", "room:2"}));
  EXPECT_EQ(s->channel_count(), 2U);
  ASSERT_TRUE(sub_states_.wait_for_count("ready", 1));

  auto c = make_client();
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));

  constexpr int kMessages = 1000;
  std::vector<std::string> expected;
  for (int i = 0; i < kMessages; ++i) {
    const std::string channel = i % 3 == 0 ? "room:2" : "room:1";
    c->send({"PUBLISH", channel, std::to_string(i)});
    expected.push_back(channel + "/" + std::to_string(i));
  }
  c->send({"PUBLISH", "elsewhere", "not subscribed"});
  EXPECT_EQ(command(c, {"PUBLISH", "room:1", "last"}).integer, 1);
  expected.emplace_back("room:1/last");

  ASSERT_TRUE(received_.wait_for_size(expected.size()));
  EXPECT_EQ(received_.items(), expected);
}

TEST_F(Redis, UnsubscribeIsReferenceCounted) {
  auto s = make_subscriber(record_messages());
  s->start();
  ASSERT_TRUE(subscribe_and_wait(*s, {"a", "b"}));
  // Already confirmed: `done` runs without another round trip.
  ASSERT_TRUE(subscribe_and_wait(*s, {"a"}));
  EXPECT_EQ(s->channel_count(), 2U);

  auto c = make_client();
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));

  s->unsubscribe({"a"});
  EXPECT_EQ(s->channel_count(), 2U);
  EXPECT_EQ(command(c, {"PUBLISH", "a", "one"}).integer, 1);
  ASSERT_TRUE(received_.wait_for_count("a/one", 1));

  s->unsubscribe({"a"});
  s->unsubscribe({"never-subscribed"});
  EXPECT_EQ(s->channel_count(), 1U);
  ASSERT_TRUE(eventually([&] {
    Reply numsub = command(c, {"PUBSUB", "NUMSUB", "a"});
    return numsub.elements.size() == 2 && numsub.elements[1].integer == 0;
  }));
  EXPECT_EQ(command(c, {"PUBLISH", "a", "two"}).integer, 0);
  // Messages on one connection arrive in order: once "b/sync" is here, "a/two" would be too.
  EXPECT_EQ(command(c, {"PUBLISH", "b", "sync"}).integer, 1);
  ASSERT_TRUE(received_.wait_for_count("b/sync", 1));
  EXPECT_EQ(received_.count("a/two"), 0U);

  // Taken again after dropping it: subscribed for real again.
  ASSERT_TRUE(subscribe_and_wait(*s, {"a"}));
  EXPECT_EQ(command(c, {"PUBLISH", "a", "three"}).integer, 1);
  ASSERT_TRUE(received_.wait_for_count("a/three", 1));
}

TEST_F(Redis, ClientAndSubscriberRecoverAfterServerRestart) {
  auto c = make_client(0, 60s);
  c->on_state([this](bool up) { client_states_.add(up ? "up" : "down"); });
  c->start();

  auto s = make_subscriber(record_messages());
  s->on_state([this](bool ready) { sub_states_.add(ready ? "ready" : "lost"); });
  s->start();
  ASSERT_TRUE(subscribe_and_wait(*s, {"news"}));
  ASSERT_TRUE(client_states_.wait_for_count("up", 1));
  ASSERT_TRUE(sub_states_.wait_for_count("ready", 1));
  EXPECT_EQ(command(c, {"PUBLISH", "news", "before"}).integer, 1);
  ASSERT_TRUE(received_.wait_for_count("news/before", 1));

  // A reply outstanding when the server dies fails with Unavailable.
  auto blocked = spawn(outcome(c, {"BLPOP", "empty-list", "30"}));
  ASSERT_TRUE(wait_until_blocked(1));

  server_->kill();
  ASSERT_TRUE(client_states_.wait_for_count("down", 1));
  ASSERT_TRUE(sub_states_.wait_for_count("lost", 1));
  ASSERT_EQ(blocked.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(blocked.get(), "unavailable");
  EXPECT_FALSE(c->connected());
  EXPECT_EQ(run(outcome(c, {"PING"})), "unavailable");

  // Taken while the server is down: remembered, confirmed after the reconnect.
  auto late_confirmed = std::make_shared<std::promise<void>>();
  auto late_done = late_confirmed->get_future();
  s->subscribe({"late"}, [late_confirmed] { late_confirmed->set_value(); });
  EXPECT_EQ(s->channel_count(), 2U);

  ASSERT_TRUE(server_->start());
  ASSERT_TRUE(client_states_.wait_for_count("up", 2));
  ASSERT_TRUE(sub_states_.wait_for_count("ready", 2));
  ASSERT_EQ(late_done.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(c->connected());

  EXPECT_EQ(command(c, {"PUBLISH", "news", "after"}).integer, 1);
  EXPECT_EQ(command(c, {"PUBLISH", "late", "too"}).integer, 1);
  ASSERT_TRUE(received_.wait_for_count("late/too", 1));
  EXPECT_EQ(received_.count("news/after"), 1U);
  EXPECT_EQ(client_states_.items(), (std::vector<std::string>{"up", "down", "up"}));
  EXPECT_EQ(sub_states_.items(), (std::vector<std::string>{"ready", "lost", "ready"}));
}

// The harness itself: a server started on a port another server took (tests run in
// parallel) is not mistaken for the one answering there, which a test would then pause or
// stop in vain.
TEST(RedisHarness, AServerWhosePortIsTakenDoesNotCountAsStarted) {
  if (!on_path("redis-server")) GTEST_SKIP() << "redis-server is not on PATH";
  RedisServer first(free_port());
  ASSERT_TRUE(first.start());
  RedisServer second(first.port());
  EXPECT_FALSE(second.start());
}

TEST_F(Redis, ACommandToAServerThatHangsFailsAndTheClientComesBackWithIt) {
  auto c = make_client(0, 1s);
  c->on_state([this](bool up) { client_states_.add(up ? "up" : "down"); });
  c->start();
  ASSERT_TRUE(client_states_.wait_for_count("up", 1));

  server_->pause();
  const auto asked = Clock::now();
  EXPECT_EQ(run(outcome(c, {"PING"})), "unavailable");
  EXPECT_LT(Clock::now() - asked, 10s);
  ASSERT_TRUE(client_states_.wait_for_count("down", 1));
  // Reconnecting finds the port open but nobody answering: not connected, so commands fail
  // at once instead of waiting again (well within the 1 s reply timeout, with room for a
  // busy machine's scheduling).
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(c->connected());
  EXPECT_EQ(client_states_.count("up"), 1U);
  const auto again = Clock::now();
  EXPECT_EQ(run(outcome(c, {"PING"})), "unavailable");
  EXPECT_LT(Clock::now() - again, 500ms);

  server_->resume();
  ASSERT_TRUE(client_states_.wait_for_count("up", 2));
  EXPECT_EQ(command(c, {"PING"}).str, "PONG");
}

TEST_F(Redis, APublishThatGetsNoReplyDropsTheConnectionToo) {
  auto c = make_client(0, 300ms);
  c->on_state([this](bool up) { client_states_.add(up ? "up" : "down"); });
  c->start();
  ASSERT_TRUE(client_states_.wait_for_count("up", 1));
  server_->pause();
  c->send({"PUBLISH", "news", "nobody hears this"});
  ASSERT_TRUE(client_states_.wait_for_count("down", 1));
  EXPECT_FALSE(c->connected());
  server_->resume();
  ASSERT_TRUE(client_states_.wait_for_count("up", 2));
}

TEST_F(Redis, RepliesThatKeepComingKeepTheConnection) {
  auto c = make_client(0, 1s);
  c->on_state([this](bool up) { client_states_.add(up ? "up" : "down"); });
  c->start();
  ASSERT_TRUE(client_states_.wait_for_count("up", 1));
  // Commands one after another for twice the timeout: each answered in time.
  const auto until = Clock::now() + 2s;
  int answered = 0;
  while (Clock::now() < until) {
    ASSERT_EQ(run(outcome(c, {"INCR", "n"})), "ok");
    ++answered;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GT(answered, 10);
  EXPECT_EQ(client_states_.items(), std::vector<std::string>{"up"});
}

TEST_F(Redis, ASlowServerThatKeepsAnsweringKeepsTheConnection) {
  auto c = make_client(0, 1s);
  c->on_state([this](bool up) { client_states_.add(up ? "up" : "down"); });
  c->start();
  ASSERT_TRUE(client_states_.wait_for_count("up", 1));
  // Fourteen commands at once, each answered 150 ms after the one before: the last waits
  // 2.1 s, twice the timeout, while the server is never silent that long. (Each is padded
  // to the 16 KiB Redis reads at a time, so that it answers each before reading the next,
  // as it does a busy client's stream.)
  const std::string busy = R"lua(
local t0 = redis.call('TIME')
repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + t[2] - t0[2] >= 150000
return 1
)lua";
  std::vector<std::future<std::string>> replies;
  for (int i = 0; i < 14; ++i) {
    replies.push_back(spawn(outcome(c, {"EVAL", busy, "0", std::string(16 * 1024, 'x')})));
  }
  for (auto& r : replies) {
    ASSERT_EQ(r.wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(r.get(), "ok");
  }
  EXPECT_EQ(client_states_.items(), std::vector<std::string>{"up"});
}

TEST_F(Redis, AServerThatRefusesThePingIsNotConnected) {
  // It answers, with an error (NOAUTH): not a server this client can use.
  RedisServer locked(free_port(), {"--requirepass", "not-given"});
  ASSERT_TRUE(locked.start());
  auto c = make_client(locked.port());
  c->on_state([this](bool up) { client_states_.add(up ? "up" : "down"); });
  c->start();
  std::this_thread::sleep_for(700ms);  // several attempts
  EXPECT_FALSE(c->connected());
  EXPECT_TRUE(client_states_.items().empty());
  EXPECT_EQ(run(outcome(c, {"PING"})), "unavailable");
  c->stop();
}

TEST_F(Redis, SubscriberGivesUpAServerThatConfirmsNothing) {
  auto s = make_subscriber(record_messages());
  s->on_state([this](bool ready) { sub_states_.add(ready ? "ready" : "lost"); });
  s->start();
  ASSERT_TRUE(subscribe_and_wait(*s, {"news"}));
  ASSERT_TRUE(sub_states_.wait_for_count("ready", 1));
  server_->pause();
  auto confirmed = std::make_shared<std::promise<void>>();
  auto done = confirmed->get_future();
  s->subscribe({"late"}, [confirmed] { confirmed->set_value(); });
  ASSERT_TRUE(sub_states_.wait_for_count("lost", 1))  // after 2 s of silence
      << "redis-server state " << server_->state() << ", subscriber states "
      << ::testing::PrintToString(sub_states_.items());
  server_->resume();
  ASSERT_TRUE(sub_states_.wait_for_count("ready", 2));
  ASSERT_EQ(done.wait_for(kWait), std::future_status::ready);
  auto c = make_client();
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));
  EXPECT_EQ(command(c, {"PUBLISH", "late", "now"}).integer, 1);
  ASSERT_TRUE(received_.wait_for_count("late/now", 1));
}

TEST_F(Redis, SubscriberDoesNotCountAServerThatHangsAsReady) {
  server_->pause();
  auto s = make_subscriber(record_messages());
  s->on_state([this](bool ready) { sub_states_.add(ready ? "ready" : "lost"); });
  s->start();
  auto confirmed = std::make_shared<std::promise<void>>();
  auto done = confirmed->get_future();
  s->subscribe({"news"}, [confirmed] { confirmed->set_value(); });
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(sub_states_.items().empty());
  server_->resume();
  ASSERT_EQ(done.wait_for(kWait), std::future_status::ready);
  ASSERT_TRUE(sub_states_.wait_for_count("ready", 1));
  auto c = make_client();
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));
  EXPECT_EQ(command(c, {"PUBLISH", "news", "now"}).integer, 1);
  ASSERT_TRUE(received_.wait_for_count("news/now", 1));
}

TEST_F(Redis, StopWithCommandsInFlightFailsThemCleanly) {
  auto c = make_client(0, 60s);
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));

  // The BLPOP holds the connection, so everything sent after it is still waiting.
  std::vector<std::future<std::string>> pending;
  pending.push_back(spawn(outcome(c, {"BLPOP", "empty-list", "30"})));
  ASSERT_TRUE(wait_until_blocked(1));
  for (int i = 0; i < 200; ++i) {
    pending.push_back(spawn(outcome_unowned(c.get(), {"INCR", "n"}, &started_)));
  }
  ASSERT_TRUE(eventually([&] { return started_.load() == 200; }));
  std::this_thread::sleep_for(50ms);  // let them reach the connection
  c->stop();
  for (auto& p : pending) {
    ASSERT_EQ(p.wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(p.get(), "unavailable");
  }
  EXPECT_FALSE(c->connected());
  EXPECT_EQ(run(outcome(c, {"PING"})), "unavailable");
  c->start();  // a stopped client stays stopped
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(c->connected());
}

TEST_F(Redis, DestroyingClientsMidFlightIsSafe) {
  // Not kept by the fixture: the last reference goes while commands and messages are in
  // flight, and nothing may touch the freed objects afterwards.
  auto c = RedisClient::create(io_.get_executor(), "127.0.0.1", server_->port(), 60s);
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));
  std::vector<std::future<std::string>> pending;
  for (int i = 0; i < 100; ++i) {
    pending.push_back(spawn(outcome_unowned(c.get(), {"BLPOP", "empty", "30"}, &started_)));
  }
  ASSERT_TRUE(eventually([&] { return started_.load() == 100; }));
  ASSERT_TRUE(wait_until_blocked(1));

  auto s = RedisSubscriber::create(io_.get_executor(), "127.0.0.1", server_->port(),
                                   [this](const std::string&, const std::string&) { ++messages_; });
  s->start();
  ASSERT_TRUE(subscribe_and_wait(*s, {"flood"}));
  auto publisher = make_client();
  publisher->start();
  ASSERT_TRUE(eventually([&] { return publisher->connected(); }));
  for (int i = 0; i < 2000; ++i) publisher->send({"PUBLISH", "flood", std::string(100, 'x')});
  ASSERT_TRUE(eventually([&] { return messages_.load() > 0; }));

  c.reset();
  s.reset();
  for (auto& p : pending) {
    ASSERT_EQ(p.wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(p.get(), "unavailable");
  }
  // Once every callback that was already running has finished, none comes any more.
  std::this_thread::sleep_for(100ms);
  const int seen = messages_.load();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(messages_.load(), seen);
  EXPECT_EQ(command(publisher, {"PING"}).str, "PONG");
}

TEST_F(Redis, AChannelDroppedAndTakenAgainAtOnceStaysSubscribed) {
  auto s = make_subscriber(record_messages());
  s->start();
  ASSERT_TRUE(subscribe_and_wait(*s, {"a"}));
  auto c = make_client();
  c->start();
  ASSERT_TRUE(eventually([&] { return c->connected(); }));
  for (int round = 0; round < 20; ++round) {
    // The UNSUBSCRIBE and the SUBSCRIBE are on the wire together.
    s->unsubscribe({"a"});
    ASSERT_TRUE(subscribe_and_wait(*s, {"a"})) << round;
    const std::string payload = "round" + std::to_string(round);
    EXPECT_EQ(command(c, {"PUBLISH", "a", payload}).integer, 1) << round;
    ASSERT_TRUE(received_.wait_for_count("a/" + payload, 1)) << round;
  }
}
