#include "redis/redis_client.hpp"

#include <hiredis/async.h>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <stdexcept>

#include "metrics/metrics.hpp"
#include "redis/argv.hpp"
#include "redis/link.hpp"

namespace chat::redis {

namespace asio = boost::asio;

namespace {

// A command waiting for its reply. hiredis holds it as the callback's private data and
// calls back exactly once: with the reply, or with none when the connection goes away.
class Pending {
 public:
  virtual ~Pending() = default;
  virtual void complete(std::exception_ptr error, Reply reply) = 0;
};

template <class Handler>
class PendingOp final : public Pending {
 public:
  explicit PendingOp(Handler handler)
      : handler_(std::move(handler)),
        work_(asio::make_work_guard(asio::get_associated_executor(handler_))) {}

  // Posted, not dispatched: the caller's code must not run inside hiredis's reply loop.
  void complete(std::exception_ptr error, Reply reply) override {
    auto executor = work_.get_executor();
    asio::post(executor,
               [handler = std::move(handler_), error, reply = std::move(reply)]() mutable {
                 std::move(handler)(error, std::move(reply));
               });
    work_.reset();
  }

 private:
  Handler handler_;
  asio::executor_work_guard<asio::associated_executor_t<Handler>> work_;
};

Reply to_reply(const redisReply& r) {
  Reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(to_reply(*r.element[i]));
      break;
    default:
      break;  // nil
  }
  return out;
}

std::exception_ptr unavailable(const char* why) {
  return std::make_exception_ptr(Unavailable(std::string("redis: ") + why));
}

// What hiredis calls back with a command's reply.
void complete_pending(void* r, void* privdata) {
  std::unique_ptr<Pending> op(static_cast<Pending*>(privdata));
  if (!op) return;  // send(): nobody waits
  try {
    const auto* reply = static_cast<const redisReply*>(r);
    if (reply == nullptr) {
      op->complete(std::make_exception_ptr(Unanswered("redis: connection lost")), {});
    } else if (reply->type == REDIS_REPLY_ERROR) {
      op->complete(std::make_exception_ptr(ReplyError(std::string(reply->str, reply->len))), {});
    } else {
      op->complete(nullptr, to_reply(*reply));
    }
  } catch (...) {
    // Out of memory while copying the reply; nothing may unwind into hiredis. The waiting
    // coroutine is destroyed with its handler.
  }
}

// These switch hiredis into pub/sub or monitor mode, where replies no longer match
// commands one to one; they belong on RedisSubscriber.
bool is_mode_switch(const std::string& name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "subscribe" || lower == "psubscribe" || lower == "ssubscribe" ||
         lower == "unsubscribe" || lower == "punsubscribe" || lower == "sunsubscribe" ||
         lower == "monitor";
}

// hiredis asserts on an empty command.
bool acceptable(const std::vector<std::string>& args) {
  return !args.empty() && !is_mode_switch(args.front());
}

}  // namespace

class RedisClient::Impl final : public detail::Link {
 public:
  using Link::Link;

  // Starts a command from the caller's thread; the rest happens on the strand.
  struct Initiate {
    std::shared_ptr<Impl> impl;

    template <class Handler>
    void operator()(Handler&& handler, std::vector<std::string> args) const {
      std::unique_ptr<Pending> op =
          std::make_unique<PendingOp<std::decay_t<Handler>>>(std::forward<Handler>(handler));
      asio::post(impl->strand(),
                 [impl = impl, args = std::move(args), op = std::move(op)]() mutable {
                   impl->submit(args, std::move(op));
                 });
    }
  };

  void set_on_state(std::function<void(bool)> callback) { on_state_ = std::move(callback); }

  void submit(const std::vector<std::string>& args, std::unique_ptr<Pending> op) {
    redisAsyncContext* ac = context();
    if (ac == nullptr) {
      op->complete(unavailable("not connected"), {});
      return;
    }
    detail::Argv argv(args);
    if (redisAsyncCommandArgv(ac, &Impl::on_reply, op.get(), argv.argc(), argv.argv(),
                              argv.lens()) != REDIS_OK) {
      op->complete(unavailable("connection closing"), {});
      return;
    }
    static_cast<void>(op.release());  // hiredis owns it until on_reply
    awaiting_replies(1);
  }

  // Its reply is awaited all the same: a server that takes PUBLISHes and never answers
  // them has stopped.
  void send_now(const std::vector<std::string>& args) {
    redisAsyncContext* ac = context();
    if (ac == nullptr) return;
    detail::Argv argv(args);
    if (redisAsyncCommandArgv(ac, &Impl::on_reply, nullptr, argv.argc(), argv.argv(),
                              argv.lens()) == REDIS_OK) {
      awaiting_replies(1);
    }
  }

 private:
  // Called once per command: with its reply, or with none while the context is freed
  // (then the link has already forgotten what it awaited).
  static void on_reply(redisAsyncContext* ac, void* r, void* privdata) {
    auto* self = static_cast<Impl*>(static_cast<Link*>(ac->data));
    if (self != nullptr && r != nullptr) self->replies_arrived(1);
    complete_pending(r, privdata);
  }

  void on_connected() override {
    metrics::metrics().redis_connected.set(1);
    notify(on_state_, true);
  }
  void on_lost() override {
    metrics::metrics().redis_connected.set(0);
    notify(on_state_, false);
  }

  std::function<void(bool)> on_state_;
};

// By value, as the interface takes executors (like Asio).
// NOLINTNEXTLINE(performance-unnecessary-value-param)
std::shared_ptr<RedisClient> RedisClient::create(asio::any_io_executor executor, std::string host,
                                                 int port,
                                                 std::chrono::milliseconds reply_timeout) {
  auto impl = std::make_shared<Impl>(executor, std::move(host), port, reply_timeout);
  return std::shared_ptr<RedisClient>(new RedisClient(std::move(impl)));
}

RedisClient::RedisClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

RedisClient::~RedisClient() {
  impl_->stop();
}

void RedisClient::start() {
  impl_->start();
}

void RedisClient::stop() {
  impl_->stop();
}

bool RedisClient::connected() const {
  return impl_->connected();
}

std::uint64_t RedisClient::connections() const {
  return impl_->connections();
}

void RedisClient::on_state(std::function<void(bool)> callback) {
  impl_->set_on_state(std::move(callback));
}

// Not a coroutine itself: the checks throw before anything is sent, and the awaitable that
// async_initiate returns is the whole operation.
asio::awaitable<Reply> RedisClient::command(std::vector<std::string> args) {
  if (!acceptable(args)) {
    throw std::invalid_argument("redis: empty command, or a pub/sub or monitor command");
  }
  auto& m = metrics::metrics();
  if (!impl_->connected()) {
    m.redis_errors.with({"unavailable"}).inc();
    throw Unavailable("redis: not connected");
  }
  const auto started = std::chrono::steady_clock::now();
  auto waited = [started] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  Impl::Initiate initiate{impl_};
  try {
    auto reply = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                               void(std::exception_ptr, Reply)>(
        std::move(initiate), asio::use_awaitable, std::move(args));
    m.redis_seconds.observe(waited());
    co_return reply;
  } catch (const ReplyError&) {
    m.redis_seconds.observe(waited());
    m.redis_errors.with({"reply"}).inc();
    throw;
  } catch (const Unavailable&) {
    m.redis_errors.with({"unavailable"}).inc();
    throw;
  }
}

void RedisClient::send(std::vector<std::string> args) {
  if (!acceptable(args) || !impl_->connected()) return;
  asio::post(impl_->strand(), [impl = impl_, args = std::move(args)] { impl->send_now(args); });
}

}  // namespace chat::redis
