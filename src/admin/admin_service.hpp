// The staff-only administration behind /admin/ (API.md "Service endpoints"): every user,
// chat and message, deactivating accounts, deleting messages, and live counts. Every
// method first checks that the caller is active staff (403 otherwise), so no transport can
// skip the rule.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "store/store.hpp"

namespace chat::auth {
class AuthService;
}
namespace chat::users {
class OnlineUsers;
}
namespace chat::chats {
class MessageService;
}

namespace chat::admin {

struct UserQuery {
  std::string search;  // username prefix, case-insensitive
  int limit = 50;
  std::int64_t offset = 0;
  FieldErrors errors;  // from parsing: reported only to staff
};

struct UserView {
  store::UserRecord user;
  bool online = false;
};

struct UserPage {
  std::int64_t count = 0;
  std::vector<UserView> users;
};

struct UserChanges {
  std::optional<bool> is_active;
  std::optional<bool> is_staff;
  FieldErrors errors;  // from parsing
};

struct ChatQuery {
  std::string search;  // part of the name, case-insensitive
  int limit = 50;
  std::int64_t offset = 0;
  FieldErrors errors;  // from parsing: reported only to staff
};

struct ChatDetail {
  store::ChatOverview overview;
  std::vector<store::MemberRecord> members;
};

struct MessageQuery {
  std::optional<std::int64_t> chat_id;
  std::string q;  // words or prefixes; empty: every message
  std::optional<std::int64_t> before;
  int limit = 50;
  FieldErrors errors;  // from parsing: reported only to staff
};

struct MessagePage {
  std::vector<store::MessageRecord> messages;
  std::vector<store::Watermarks> watermarks;  // of each message's chat, for its status
  bool has_more = false;
};

struct Stats {
  std::int64_t users_total = 0;
  std::int64_t users_online = 0;
  std::int64_t sockets = 0;
  std::int64_t chats_total = 0;
  std::int64_t messages_total = 0;
  std::int64_t messages_per_minute = 0;  // sent in the last 60 seconds
};

// Closes every socket of a user on every node (the server wires it to the broker).
using EndSessions = std::function<void(std::int64_t user_id)>;

class AdminService {
 public:
  AdminService(store::Store& store, auth::AuthService& auth, users::OnlineUsers& online,
               chats::MessageService& messages, EndSessions end_sessions);

  boost::asio::awaitable<Result<UserPage>> users(const store::UserRecord& me, UserQuery q);
  boost::asio::awaitable<Result<UserView>> user(const store::UserRecord& me, std::int64_t id);
  // Deactivating ends the account's sessions at once: refresh tokens revoked, sockets
  // closed on every node (access tokens of an inactive user are refused anyway).
  boost::asio::awaitable<Result<UserView>> update_user(const store::UserRecord& me, std::int64_t id,
                                                       UserChanges changes);

  boost::asio::awaitable<Result<store::ChatOverviewPage>> chats(const store::UserRecord& me,
                                                                ChatQuery q);
  boost::asio::awaitable<Result<ChatDetail>> chat(const store::UserRecord& me, std::int64_t id);

  boost::asio::awaitable<Result<MessagePage>> messages(const store::UserRecord& me, MessageQuery q);
  // Delete for everyone; members hear it as the sender's own delete.
  boost::asio::awaitable<Result<Ok>> delete_message(const store::UserRecord& me, std::int64_t id);

  boost::asio::awaitable<Result<Stats>> stats(const store::UserRecord& me);

 private:
  boost::asio::awaitable<UserView> view(store::UserRecord user);

  store::Store& store_;
  auth::AuthService& auth_;
  users::OnlineUsers& online_;
  chats::MessageService& messages_;
  EndSessions end_sessions_;
};

}  // namespace chat::admin
