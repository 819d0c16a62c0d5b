#include "redis/redis_subscriber.hpp"

#include <hiredis/async.h>

#include <boost/asio/post.hpp>

#include <list>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "redis/argv.hpp"
#include "redis/link.hpp"

namespace chat::redis {

namespace asio = boost::asio;

// Reference counts are kept on the caller's side under a mutex, so that channel_count() is
// exact at once; only the transitions 0 -> 1 and 1 -> 0 travel to the strand, posted while
// the mutex is held so they arrive in the order the counts changed.
//
// On the strand, `held_` is what should be subscribed, `confirmed_` what the server has
// confirmed on the current connection, and `inflight_` how many SUBSCRIBE replies are still
// due per channel: a channel dropped and taken again quickly has two on the wire, and only
// the last one confirms it.
class RedisSubscriber::Impl final : public detail::Link {
 public:
  Impl(const asio::any_io_executor& executor, std::string host, int port, OnMessage on_message)
      : Link(executor, std::move(host), port), on_message_(std::move(on_message)) {}

  void set_on_state(std::function<void(bool)> callback) { on_state_ = std::move(callback); }

  void subscribe(std::vector<std::string> channels, std::function<void()> done) {
    auto self = std::static_pointer_cast<Impl>(shared_from_this());
    std::lock_guard lock(mutex_);
    std::vector<std::string> added;
    for (const auto& c : channels) {
      if (++refs_[c] == 1) added.push_back(c);
    }
    asio::post(strand(),
               [self, added = std::move(added), channels = std::move(channels),
                done = std::move(done)]() mutable { self->add(added, channels, std::move(done)); });
  }

  void unsubscribe(std::vector<std::string> channels) {
    auto self = std::static_pointer_cast<Impl>(shared_from_this());
    std::lock_guard lock(mutex_);
    // Keeps, in place, only the channels whose count reaches zero: all the strand needs.
    std::erase_if(channels, [this](const std::string& c) {
      auto it = refs_.find(c);
      if (it == refs_.end() || --it->second > 0) return true;
      refs_.erase(it);
      return false;
    });
    if (channels.empty()) return;
    asio::post(strand(),
               [self, removed = std::move(channels)]() mutable { self->remove(removed); });
  }

  std::size_t channel_count() const {
    std::lock_guard lock(mutex_);
    return refs_.size();
  }

 private:
  struct Waiter {
    std::set<std::string> waiting;  // channels not confirmed yet
    std::function<void()> done;
  };

  void add(const std::vector<std::string>& added, const std::vector<std::string>& wanted,
           std::function<void()> done) {
    for (const auto& c : added) held_.insert(c);
    if (!added.empty()) send_subscribe(added);
    Waiter w;
    for (const auto& c : wanted) {
      if (held_.contains(c) && !confirmed_.contains(c)) w.waiting.insert(c);
    }
    if (w.waiting.empty()) {
      notify(done);
    } else if (done) {
      w.done = std::move(done);
      waiters_.push_back(std::move(w));
    }
  }

  void remove(const std::vector<std::string>& removed) {
    for (const auto& c : removed) {
      held_.erase(c);
      confirmed_.erase(c);
    }
    if (redisAsyncContext* ac = context()) {
      std::vector<std::string> args{"UNSUBSCRIBE"};
      args.insert(args.end(), removed.begin(), removed.end());
      detail::Argv argv(args);
      redisAsyncCommandArgv(ac, nullptr, nullptr, argv.argc(), argv.argv(), argv.lens());
    }
    // Nothing is left to wait for on a channel given up before it was confirmed.
    for (const auto& c : removed) settle(c);
    check_ready();  // the last unconfirmed channel may be the one dropped
    run_finished_waiters();
  }

  // One SUBSCRIBE for many channels: one round trip however many there are.
  void send_subscribe(const std::vector<std::string>& channels) {
    redisAsyncContext* ac = context();
    if (ac == nullptr) return;  // on_connected() sends every held channel
    std::vector<std::string> args{"SUBSCRIBE"};
    args.insert(args.end(), channels.begin(), channels.end());
    detail::Argv argv(args);
    if (redisAsyncCommandArgv(ac, &Impl::on_reply, nullptr, argv.argc(), argv.argv(),
                              argv.lens()) != REDIS_OK) {
      return;  // the connection is going away; on_connected() will resend
    }
    for (const auto& c : channels) ++inflight_[c];
    // One confirmation per channel; a server that sends none in time is given up (Link).
    awaiting_replies(channels.size());
  }

  void on_connected() override {
    confirmed_.clear();
    inflight_.clear();
    ready_ = false;
    if (!held_.empty()) send_subscribe(std::vector<std::string>(held_.begin(), held_.end()));
    check_ready();
  }

  void on_lost() override {
    confirmed_.clear();
    inflight_.clear();
    if (ready_) {
      ready_ = false;
      notify(on_state_, false);
    }
  }

  // The same callback serves every channel; hiredis calls it for subscribe confirmations and
  // messages (and with no reply while freeing the context, which on_lost() covers).
  static void on_reply(redisAsyncContext* ac, void* r, void* /*privdata*/) {
    auto* self = static_cast<Impl*>(static_cast<Link*>(ac->data));
    const auto* reply = static_cast<const redisReply*>(r);
    if (self == nullptr || reply == nullptr) return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) return;
    const redisReply* kind = reply->element[0];
    const redisReply* channel = reply->element[1];
    if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) return;
    const std::string_view k(kind->str, kind->len);
    try {
      std::string name(channel->str, channel->len);
      if (k == "message" && reply->elements >= 3) {
        const redisReply* payload = reply->element[2];
        if (payload->type == REDIS_REPLY_STRING && self->held_.contains(name)) {
          self->notify(self->on_message_, name, std::string(payload->str, payload->len));
        }
      } else if (k == "subscribe") {
        self->replies_arrived(1);
        self->confirm(name);
      }
    } catch (...) {
      // Out of memory copying a message; nothing may unwind into hiredis.
    }
  }

  void confirm(const std::string& channel) {
    auto it = inflight_.find(channel);
    if (it != inflight_.end() && --it->second > 0) return;  // a later SUBSCRIBE is due
    if (it != inflight_.end()) inflight_.erase(it);
    if (!held_.contains(channel)) return;
    confirmed_.insert(channel);
    settle(channel);
    check_ready();
    run_finished_waiters();
  }

  void settle(const std::string& channel) {
    for (auto& w : waiters_) w.waiting.erase(channel);
  }

  void check_ready() {
    if (ready_ || !connected() || confirmed_.size() != held_.size()) return;
    ready_ = true;
    notify(on_state_, true);
  }

  // Taken out of the list first: a callback may subscribe again, which only posts, but the
  // list must be consistent whatever it does.
  void run_finished_waiters() {
    std::vector<std::function<void()>> ready;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->waiting.empty()) {
        ready.push_back(std::move(it->done));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& done : ready) notify(done);
  }

  OnMessage on_message_;
  std::function<void(bool)> on_state_;

  mutable std::mutex mutex_;
  std::unordered_map<std::string, int> refs_;  // guarded by mutex_

  // Strand only.
  std::unordered_set<std::string> held_;
  std::unordered_set<std::string> confirmed_;  // a subset of held_
  std::unordered_map<std::string, int> inflight_;
  std::list<Waiter> waiters_;
  bool ready_ = false;
};

// By value, as the interface takes executors (like Asio).
// NOLINTNEXTLINE(performance-unnecessary-value-param)
std::shared_ptr<RedisSubscriber> RedisSubscriber::create(asio::any_io_executor executor,
                                                         std::string host, int port,
                                                         OnMessage on_message) {
  auto impl = std::make_shared<Impl>(executor, std::move(host), port, std::move(on_message));
  return std::shared_ptr<RedisSubscriber>(new RedisSubscriber(std::move(impl)));
}

RedisSubscriber::RedisSubscriber(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

RedisSubscriber::~RedisSubscriber() {
  impl_->stop();
}

void RedisSubscriber::on_state(std::function<void(bool)> callback) {
  impl_->set_on_state(std::move(callback));
}

void RedisSubscriber::start() {
  impl_->start();
}

void RedisSubscriber::stop() {
  impl_->stop();
}

void RedisSubscriber::subscribe(std::vector<std::string> channels, std::function<void()> done) {
  impl_->subscribe(std::move(channels), std::move(done));
}

void RedisSubscriber::unsubscribe(std::vector<std::string> channels) {
  impl_->unsubscribe(std::move(channels));
}

std::size_t RedisSubscriber::channel_count() const {
  return impl_->channel_count();
}

}  // namespace chat::redis
