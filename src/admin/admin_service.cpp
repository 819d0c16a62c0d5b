#include "admin/admin_service.hpp"

#include <map>

#include "auth/auth_service.hpp"
#include "auth/credential_rules.hpp"
#include "chat/message_service.hpp"
#include "chat/search_query.hpp"
#include "chat/wire.hpp"
#include "common/unicode.hpp"
#include "users/online_users.hpp"

namespace chat::admin {
namespace {

using boost::asio::awaitable;

// Staff status is read from the account as it is now (the caller was just loaded from
// the store by the bearer check), so revoking it takes effect on the next request.
Result<Ok> require_staff(const store::UserRecord& me) {
  if (!me.is_active || !me.is_staff) return Error::forbidden();
  return Ok{};
}

Error no_user() {
  return Error::not_found("No User matches the given query.");
}

constexpr Micros kMinute = 60'000'000;

}  // namespace

AdminService::AdminService(store::Store& store, auth::AuthService& auth, users::OnlineUsers& online,
                           chats::MessageService& messages, EndSessions end_sessions)
    : store_(store),
      auth_(auth),
      online_(online),
      messages_(messages),
      end_sessions_(std::move(end_sessions)) {}

awaitable<UserView> AdminService::view(store::UserRecord user) {
  std::vector<std::int64_t> ids{user.id};
  auto online = co_await online_.online(std::move(ids));
  const bool is_online = !online.empty() && online[0];
  co_return UserView{std::move(user), is_online};
}

awaitable<Result<UserPage>> AdminService::users(const store::UserRecord& me, UserQuery q) {
  if (auto ok = require_staff(me); !ok) co_return std::move(ok).error();
  if (!q.errors.empty()) co_return Error::validation(std::move(q.errors));
  store::UserFilter filter{auth::username_key(q.search), false};
  auto page = co_await store_.users().list(std::move(filter), q.limit, q.offset);
  std::vector<std::int64_t> ids;
  ids.reserve(page.users.size());
  for (const auto& u : page.users) ids.push_back(u.id);
  auto online = co_await online_.online(std::move(ids));
  UserPage out{page.count, {}};
  out.users.reserve(page.users.size());
  for (std::size_t i = 0; i < page.users.size(); ++i) {
    out.users.push_back({std::move(page.users[i]), i < online.size() && online[i]});
  }
  co_return out;
}

awaitable<Result<UserView>> AdminService::user(const store::UserRecord& me, std::int64_t id) {
  if (auto ok = require_staff(me); !ok) co_return std::move(ok).error();
  auto user = co_await store_.users().find_by_id(id);
  if (!user) co_return no_user();
  co_return co_await view(std::move(*user));
}

awaitable<Result<UserView>> AdminService::update_user(const store::UserRecord& me, std::int64_t id,
                                                      UserChanges in) {
  if (auto ok = require_staff(me); !ok) co_return std::move(ok).error();
  auto target = co_await store_.users().find_by_id(id);
  if (!target) co_return no_user();
  if (!in.errors.empty()) co_return Error::validation(std::move(in.errors));
  // Nobody locks themself out of the panel by accident.
  if (id == me.id) {
    FieldErrors self;
    if (in.is_active == false) self.add("is_active", "You cannot deactivate yourself.");
    if (in.is_staff == false) self.add("is_staff", "You cannot remove your own staff status.");
    if (!self.empty()) co_return Error::validation(std::move(self));
  }
  // As in Django, only a superuser may change a superuser's account.
  if (target->is_superuser && !me.is_superuser) co_return Error::forbidden();

  store::UserChanges changes;
  changes.is_active = in.is_active;
  changes.is_staff = in.is_staff;
  // A deactivation ends every session of the user in its own transaction.
  if (in.is_active == false) changes.end_sessions = auth_.session_end(std::string());
  auto updated = co_await store_.users().update(id, std::move(changes));
  if (!updated) co_return no_user();
  // After the commit, so a socket that opens from now on is refused at the handshake, and
  // one that opened just before is closed here (or checks the account after attaching).
  if (in.is_active == false && end_sessions_) end_sessions_(id);
  co_return co_await view(std::move(updated->user));
}

awaitable<Result<store::ChatOverviewPage>> AdminService::chats(const store::UserRecord& me,
                                                               ChatQuery q) {
  if (auto ok = require_staff(me); !ok) co_return std::move(ok).error();
  if (!q.errors.empty()) co_return Error::validation(std::move(q.errors));
  auto name = unicode::to_lower(unicode::trim(q.search));
  co_return co_await store_.admin().chats(std::move(name), q.limit, q.offset);
}

awaitable<Result<ChatDetail>> AdminService::chat(const store::UserRecord& me, std::int64_t id) {
  if (auto ok = require_staff(me); !ok) co_return std::move(ok).error();
  auto overview = co_await store_.admin().chat(id);
  if (!overview) co_return Error::not_found("No Chat matches the given query.");
  auto members = co_await store_.chats().members(id);
  co_return ChatDetail{std::move(*overview), std::move(members)};
}

awaitable<Result<MessagePage>> AdminService::messages(const store::UserRecord& me, MessageQuery q) {
  if (auto ok = require_staff(me); !ok) co_return std::move(ok).error();
  if (!q.errors.empty()) co_return Error::validation(std::move(q.errors));
  store::MessageFilter filter;
  filter.chat_id = q.chat_id;
  filter.before = q.before;
  filter.limit = q.limit;
  if (!unicode::trim(q.q).empty()) {
    filter.terms = chats::search_terms(q.q);
    if (auto problem = chats::search_terms_problem(filter.terms)) {
      co_return Error::field("q", std::move(*problem));
    }
  }
  auto page = co_await store_.admin().messages(std::move(filter));
  // Each message's status needs its chat's watermarks: one read per chat on the page.
  std::map<std::int64_t, store::Watermarks> marks;
  for (const auto& m : page.messages) {
    if (!marks.contains(m.chat_id))
      marks[m.chat_id] = co_await store_.chats().watermarks(m.chat_id);
  }
  MessagePage out;
  out.has_more = page.has_more;
  out.watermarks.reserve(page.messages.size());
  for (const auto& m : page.messages) out.watermarks.push_back(marks[m.chat_id]);
  out.messages = std::move(page.messages);
  co_return out;
}

awaitable<Result<Ok>> AdminService::delete_message(const store::UserRecord& me, std::int64_t id) {
  if (auto ok = require_staff(me); !ok) co_return std::move(ok).error();
  co_return co_await messages_.remove_as_staff(id);
}

awaitable<Result<Stats>> AdminService::stats(const store::UserRecord& me) {
  if (auto ok = require_staff(me); !ok) co_return std::move(ok).error();
  auto counts = co_await store_.admin().counts(now_micros() - kMinute);
  auto online = co_await online_.counts();
  Stats s;
  s.users_total = counts.users;
  s.users_online = online.users;
  s.sockets = online.sockets;
  s.chats_total = counts.chats;
  s.messages_total = counts.messages;
  s.messages_per_minute = counts.messages_since;
  co_return s;
}

}  // namespace chat::admin
