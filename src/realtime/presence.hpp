// Who is online: a user is online while one of their sockets is open on any node. The first
// socket and the last one are announced as user_status to the members of the user's chats;
// the last one only after a grace period, so a socket that moves to another node (or a
// page reload) does not flash "offline". Implementations: one node (in memory) and Redis
// (several nodes, with a TTL so a dead node's users do not stay online).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/time.hpp"
#include "users/online_users.hpp"

namespace chat::store {
class Store;
}
namespace chat::redis {
class RedisClient;
}

namespace chat::realtime {

class Broker;

// Who hears that a user's status changed, when the caller knows it already: a user socket
// has just read the user's chats, and the gate the account, so opening one needs no
// further reads to announce it.
struct Audience {
  std::vector<std::int64_t> chat_ids;
  std::optional<Micros> last_seen;  // as the account showed it
};

class Presence : public users::OnlineUsers {
 public:
  // A socket of the user opened / closed on this node (`audience`: see Audience; nullopt:
  // read from the store if an announcement is due). Thread-safe.
  virtual boost::asio::awaitable<void> connected(std::int64_t user_id,
                                                 std::optional<Audience> audience) = 0;
  virtual boost::asio::awaitable<void> disconnected(std::int64_t user_id) = 0;
  // The node is stopping: sockets closing now are not the users leaving (they reconnect,
  // perhaps to another node), so no grace period is waited for and no offline announced
  // from here. Thread-safe.
  virtual void shutting_down() = 0;
  // The node's sockets have closed after shutting_down(): the users still counted here
  // (online, or in their grace period) are recorded as last seen now where no other node
  // will do it, so that their last_seen outlives the restart.
  virtual boost::asio::awaitable<void> stopped() = 0;
};

// Sends user_status for a user to the members of their chats.
class PresenceAnnouncer {
 public:
  PresenceAnnouncer(store::Store& store, Broker& broker) : store_(store), broker_(broker) {}
  // `known` unset: the user's chats and last_seen are read from the store (an online user
  // shows their previous last_seen).
  boost::asio::awaitable<void> announce(std::int64_t user_id, bool online,
                                        std::optional<Audience> known);
  // Going offline: records last_seen (now), then announces it. When the database fails (an
  // outage), tries again in the background (after 1 s, then up to every 10 s, for an
  // hour) while `online` does not show the user back: else their chats' members would see
  // them online until they reload, and their last_seen would stay unset.
  boost::asio::awaitable<void> went_offline(std::int64_t user_id, users::OnlineUsers& online);
  // Records the users as last seen now, announcing nothing: users whose sockets closed as
  // the server stopped (their chats' members were connected to the same stopping server),
  // or users still online (so that a node killed leaves them a recent last_seen).
  boost::asio::awaitable<void> record_seen(std::vector<std::int64_t> user_ids,
                                           Micros when = now_micros());

 private:
  boost::asio::awaitable<void> say_offline(std::int64_t user_id, Micros left_at);
  boost::asio::awaitable<void> say_offline_later(std::int64_t user_id, Micros left_at,
                                                 users::OnlineUsers& online);

  store::Store& store_;
  Broker& broker_;
};

// `seen_every`, with an executor to run on: how often the users online are recorded as
// last seen (record_seen). One node is the whole server, and no other node would record
// when its users were last seen if it were killed.
struct SeenRefresh {
  boost::asio::any_io_executor executor;
  std::chrono::milliseconds every{60'000};
};
std::unique_ptr<Presence> make_local_presence(PresenceAnnouncer& announcer,
                                              std::chrono::milliseconds grace,
                                              std::optional<SeenRefresh> seen = std::nullopt);

// A name for this node in Redis, unique in the deployment (random).
std::string new_node_id();

struct RedisPresenceOptions {
  std::string prefix = "chat:";
  std::chrono::milliseconds ttl{60'000};
  std::chrono::milliseconds grace{5'000};
  std::string node;  // empty: new_node_id()
};

// Starts refreshing this node's users and sweeping dead nodes' users at once.
std::unique_ptr<Presence> make_redis_presence(const boost::asio::any_io_executor& executor,
                                              PresenceAnnouncer& announcer,
                                              std::shared_ptr<redis::RedisClient> client,
                                              RedisPresenceOptions options);

}  // namespace chat::realtime
