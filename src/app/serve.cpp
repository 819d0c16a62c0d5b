#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include "admin/admin_service.hpp"
#include "app/commands.hpp"
#include "app/hash_cost.hpp"
#include "app/open_store.hpp"
#include "app/serve_lock.hpp"
#include "auth/auth_service.hpp"
#include "auth/jwt_codec.hpp"
#include "auth/password_hasher.hpp"
#include "auth/rate_limiter.hpp"
#include "auth/request_throttle.hpp"
#include "chat/chat_service.hpp"
#include "chat/message_service.hpp"
#include "common/log_throttle.hpp"
#include "http/app.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "http/static_files.hpp"
#include "metrics/metrics.hpp"
#include "realtime/broker.hpp"
#include "realtime/client_events.hpp"
#include "realtime/delivery_tracker.hpp"
#include "realtime/hub.hpp"
#include "realtime/presence.hpp"
#include "realtime/recount_batcher.hpp"
#include "realtime/redis_broker.hpp"
#include "realtime/socket_limit.hpp"
#include "realtime/typing.hpp"
#include "realtime/typing_relay.hpp"
#include "redis/redis_client.hpp"
#include "users/user_service.hpp"
#include "ws/gate.hpp"
#include "ws/keepalive.hpp"
#include "ws/realtime_context.hpp"

namespace chat::app {
namespace {

namespace asio = boost::asio;

auth::AuthSettings auth_settings(const config::Settings& s) {
  auth::AuthSettings a;
  a.access_lifetime = s.access_token_lifetime;
  a.refresh_lifetime = s.refresh_token_lifetime;
  a.rotate_refresh_tokens = s.rotate_refresh_tokens;
  a.login_failures_per_user = s.login_failures_per_user;
  a.login_failures_per_address = s.login_failures_per_address;
  a.login_failure_window = s.login_failure_window;
  a.register_count = s.register_rate.count;
  a.register_window = s.register_rate.seconds;
  return a;
}

// Expired refresh tokens are of no use to anyone, and events past the retention window
// are answered with resync_required anyway: drop both hourly. This also finishes removing
// the rows of deleted chats that a stop or a failed write left (SQLite removes them after
// the deletion, a slice per write).
asio::awaitable<void> prune(store::Store& store, std::int64_t event_retention_seconds) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    try {
      const auto n = co_await store.refresh_tokens().prune_expired(now_seconds());
      if (n > 0) spdlog::info("pruned {} expired refresh tokens", n);
      const auto e =
          co_await store.chats().prune_events(now_micros() - event_retention_seconds * 1'000'000);
      if (e > 0) spdlog::info("pruned {} events older than the retention window", e);
    } catch (const std::exception& e) {
      spdlog::warn("pruning failed: {}", e.what());
    }
    try {
      const auto d = co_await store.chats().finish_chat_deletions();
      if (d > 0) spdlog::info("finished removing the rows of {} deleted chats", d);
    } catch (const std::exception& e) {
      spdlog::warn("removing the rows of deleted chats failed: {}", e.what());
    }
    timer.expires_after(std::chrono::hours(1));
    co_await timer.async_wait(asio::use_awaitable);
  }
}

// Where the running binary lives, to find the web pages of its source tree.
std::string executable_folder() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace

int serve(const config::Settings& s) {
  // The I/O context outlives the store: the store's threads finish their last operations
  // (posting completions into it) before it is destroyed.
  asio::io_context io(s.threads);
  std::optional<ServeLock> sqlite_lock;
  if (s.db.host.empty()) sqlite_lock.emplace(s.db.sqlite_path);
  auto store = open_store(s, io.get_executor());
  for (const auto& m : store->migrate()) {
    spdlog::info("applied migration {:04d}_{}", m.version, m.name);
  }

  // With REDIS_HOST, throttling, the broker and presence are shared by every node.
  std::shared_ptr<redis::RedisClient> redis_client;
  if (!s.redis.host.empty()) {
    redis_client = redis::RedisClient::create(io.get_executor(), s.redis.host, s.redis.port);
    redis_client->start();
  }

  auth::PasswordHasher hasher(s.hasher_threads, hash_cost(s));
  auto limiter = redis_client ? auth::make_redis_rate_limiter(redis_client, s.redis.prefix)
                              : auth::make_memory_rate_limiter();
  const auth::JwtCodec jwt(s.secret_key);
  auth::AuthService auth(*store, hasher, *limiter, jwt, auth_settings(s));
  // Its token buckets are kept apart from login failures' windows inside the limiter.
  auth::RequestThrottle request_throttle(*limiter, s.user_rate.count, s.user_rate.seconds);
  users::UserService users(*store, auth, hasher);
  chats::ChatService chat_service(*store);
  chats::MessageService message_service(*store, chat_service);

  // Real time: committed events go store -> broker -> hub -> sockets, in commit order.
  std::unique_ptr<realtime::Broker> broker;
  if (redis_client) {
    realtime::RedisBrokerOptions options{s.redis.host, s.redis.port, s.redis.prefix,
                                         static_cast<std::size_t>(s.redis.max_held_events)};
    broker = realtime::make_redis_broker(io.get_executor(), redis_client, options, store->chats());
  } else {
    broker = realtime::make_in_process_broker();
  }
  // A logged-out session loses its sockets on every node (4003, as a deactivated account).
  auth.on_session_ended([&broker](std::int64_t user_id, const std::string& session) {
    broker->publish_session_end({user_id, 4003, "logged out", session});
  });
  realtime::PresenceAnnouncer announcer(*store, *broker);
  const std::chrono::milliseconds presence_grace = std::chrono::seconds(s.presence.grace_seconds);
  std::unique_ptr<realtime::Presence> presence;
  // This node's name in Redis, for presence and for the socket limit.
  const std::string node = realtime::new_node_id();
  if (redis_client) {
    realtime::RedisPresenceOptions options{
        s.redis.prefix, std::chrono::seconds(s.presence.ttl_seconds), presence_grace, node};
    presence = realtime::make_redis_presence(io.get_executor(), announcer, redis_client, options);
  } else {
    presence = realtime::make_local_presence(
        announcer, presence_grace,
        realtime::SeenRefresh{io.get_executor(), std::chrono::seconds(s.presence.ttl_seconds)});
  }
  realtime::DeliveryTracker delivery(*store);
  auto read_counts = [&io, &store](std::int64_t user, std::vector<std::int64_t> chats,
                                   std::function<void(std::optional<store::UnreadCounts>)> done) {
    asio::co_spawn(
        io,
        [&store, user, chats = std::move(chats),
         done = std::move(done)]() mutable -> asio::awaitable<void> {
          std::optional<store::UnreadCounts> counts;
          const std::size_t asked = chats.size();
          try {
            counts = co_await store->chats().unread_counts(user, std::move(chats));
          } catch (const std::exception& e) {
            // Every user's recounts fail while the database is away, and are read again.
            static LogThrottle throttle(std::chrono::seconds(10));
            if (auto skipped = throttle.admit()) {
              spdlog::warn("unread recount of {} chats for user {} failed ({} more since): {}",
                           asked, user, *skipped, e.what());
            }
          }
          done(counts);
        },
        asio::detached);
  };
  auto post = [&io](std::function<void()> job) { asio::post(io, std::move(job)); };
  // Recounts that failed together (every user's, when the database went away) are spread
  // over a fifth of their delay either way, so that they do not all come back at once.
  auto later = [&io](std::chrono::milliseconds delay, std::function<void()> job) {
    thread_local std::minstd_rand spread(std::random_device{}());
    const auto fifth = std::max<std::int64_t>(1, delay.count() / 5);
    delay += std::chrono::milliseconds(
        std::uniform_int_distribution<std::int64_t>(-fifth, fifth)(spread));
    auto timer = std::make_shared<asio::steady_timer>(io, delay);
    timer->async_wait([timer, job = std::move(job)](boost::system::error_code ec) {
      if (!ec) job();
    });
  };
  realtime::RecountBatcher recounts(read_counts, post, later);
  auto recount = [&recounts](std::int64_t chat, std::int64_t user,
                             std::function<bool(std::optional<store::UnreadCount>)> done) {
    recounts.ask(chat, user, std::move(done));
  };
  auto delivered = [&delivery](std::int64_t chat, std::int64_t message,
                               const std::vector<std::int64_t>& users) {
    delivery.note(chat, message, users);
  };
  realtime::Hub hub(*broker, recount, delivered, post,
                    static_cast<std::size_t>(s.ws_max_sockets_per_user));
  realtime::TypingRelay typing_relay(hub, io.get_executor());
  broker->set_handler(&typing_relay);
  store->chats().set_commit_listener([&broker](const std::vector<store::EventRecord>& events) {
    broker->publish_committed(events);
  });
  store->chats().set_publish_barrier([&broker]() { return broker->flush(); });
  store->chats().set_uncertain_commit_listener(
      [&broker](std::int64_t first_seq) { broker->resync_from(first_seq); });
  realtime::Typing typing(*broker);
  realtime::ClientEvents client_events(chat_service, message_service, typing, *store);
  ws::Gate gate(auth, chat_service, s.allowed_origins);
  ws::SocketLimits limits;
  limits.max_frame_bytes = s.ws_max_frame_bytes;
  limits.events_per_second = s.ws_events_per_second;
  limits.burst = s.ws_event_burst;
  limits.max_queued_frames = static_cast<std::size_t>(s.ws_max_queued_frames);
  limits.max_queued_bytes = static_cast<std::size_t>(s.ws_max_queued_bytes);
  limits.idle_timeout = std::chrono::seconds(s.ws_idle_timeout);
  ws::KeepAlive keepalive(limits.idle_timeout);
  ws::RealtimeContext realtime_context{gate,   hub,       *presence, client_events,
                                       *store, keepalive, limits};
  // Several nodes: the per-user socket limit holds for the deployment.
  std::unique_ptr<realtime::SocketLimit> socket_limit;
  if (redis_client) {
    realtime::RedisSocketLimitOptions options{s.redis.prefix, node,
                                              static_cast<std::size_t>(s.ws_max_sockets_per_user),
                                              std::chrono::seconds(s.presence.ttl_seconds)};
    socket_limit = realtime::make_redis_socket_limit(
        redis_client, options, [&hub, &broker](const realtime::SessionEnd& end) {
          hub.on_session_end(end);  // here at once, and on the nodes that hear the user
          broker->publish_session_end(end);
        });
    realtime_context.socket_limit = socket_limit.get();
  }

  http::Router router;
  // Deactivated accounts lose their sockets on every node (4003, as a revoked session).
  admin::AdminService admin_service(
      *store, auth, *presence, message_service, [&broker](std::int64_t user_id) {
        broker->publish_session_end({user_id, 4003, "account deactivated"});
      });
  http::Services services{auth,
                          users,
                          *presence,
                          chat_service,
                          message_service,
                          *store,
                          admin_service,
                          request_throttle,
                          [&broker] { return broker->healthy(); }};
  http::add_all_routes(router, services);
  // The admin panel and Swagger UI, from the source tree (or WEB_ROOT).
  const std::vector<std::string> web_places{s.web_root, executable_folder() + "/../../web",
                                            executable_folder() + "/../share/chatd/web", "web"};
  const std::string web_root = http::first_existing_folder(web_places);
  http::StaticFiles static_files;
  http::mount_web_pages(static_files, web_root);
  if (static_files.file_count() == 0) {
    // The API works without them, but / and /admin/ answer 404: say where they were sought.
    std::string sought;
    for (const auto& place : web_places) {
      if (place.empty()) continue;
      if (!sought.empty()) sought += ", ";
      sought += place;
    }
    spdlog::warn(
        "no web pages found (looked in {}; WEB_ROOT names the folder): / and /admin/ "
        "will answer 404",
        web_root.empty() ? sought : web_root);
  } else {
    spdlog::info("web pages from {} ({} files)", web_root, static_files.file_count());
  }
  const http::HttpApp app(router, s.allowed_hosts, &static_files);

  http::ServerOptions options;
  options.bind = s.bind;
  options.port = static_cast<unsigned short>(s.port);
  options.max_body_bytes = s.max_body_bytes;
  options.request_timeout_seconds = s.request_timeout_seconds;
  options.keepalive_timeout_seconds = s.keepalive_timeout_seconds;
  options.trusted_proxies = s.trusted_proxies;
  http::Server server(io, options, app, &realtime_context);
  server.start();
  metrics::set_node_name(host_name() + ":" + std::to_string(server.port()));
  spdlog::info("chatd {} serving on {}:{} with {} ({} threads, DEBUG={})", CHATD_VERSION, s.bind,
               server.port(), store->describe(), s.threads, s.debug ? 1 : 0);

  asio::co_spawn(io, prune(*store, s.event_retention), asio::detached);
  asio::co_spawn(io, delivery.run(std::chrono::milliseconds(200)), asio::detached);
  asio::co_spawn(io, keepalive.run(), asio::detached);

  // SIGTERM: stop accepting, close every socket with 1001, give requests and commits in
  // flight and closing handshakes a moment, then stop.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer grace(io);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    server.stop();
    presence->shutting_down();
    hub.close_all(1001, "server shutting down");
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          const auto deadline =
              std::chrono::steady_clock::now() + std::chrono::seconds(s.shutdown_grace_seconds);
          while ((hub.session_count() > 0 || realtime_context.sessions_running > 0 ||
                  server.requests_in_progress() > 0) &&
                 std::chrono::steady_clock::now() < deadline) {
            grace.expires_after(std::chrono::milliseconds(20));
            co_await grace.async_wait(asio::use_awaitable);
          }
          co_await delivery.flush();
          try {
            co_await presence->stopped();
          } catch (const std::exception& e) {
            spdlog::warn("presence: recording who was online at shutdown failed: {}", e.what());
          }
          // A command still waiting for Redis is held by the client's connection, and holds
          // its coroutine, which holds the client: a cycle nothing frees once the loop
          // stops. Closed here while the loop runs, each such command ends (Unavailable).
          if (redis_client) {
            redis_client->stop();
            grace.expires_after(std::chrono::milliseconds(50));
            co_await grace.async_wait(asio::use_awaitable);
          }
          io.stop();
        },
        asio::detached);
  });

  std::vector<std::thread> threads;
  for (int i = 1; i < s.threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace chat::app
