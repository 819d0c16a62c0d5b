#include "chat/chat_service.hpp"

#include <algorithm>
#include <unordered_set>

#include "chat/permissions.hpp"
#include "chat/until_decided.hpp"
#include "chat/wire.hpp"
#include "common/unicode.hpp"

namespace chat::chats {
namespace {

using namespace store;

constexpr std::size_t kMaxChatName = 255;
constexpr std::size_t kMaxGroupMembers = 10'000;

Error not_a_member() {
  return Error::not_found("No Chat matches the given query.");
}

std::optional<std::string> chat_name_problem(const std::string& name) {
  if (name.empty()) return "This field may not be blank.";
  if (unicode::length(name) > kMaxChatName)
    return "Ensure this field has no more than 255 characters.";
  return std::nullopt;
}

// A chat's latest activity as the viewer sees it: a chat whose newest messages the viewer
// hid (`?for=me`) ranks by the newest one they still see, or by its creation, as its
// `last_message` shows; ranking it by a hidden one would tell them it exists.
Micros activity_seen(const ChatSummary& s) {
  const ChatRecord& c = s.chat;
  if (c.last_message_id == 0 || (s.last_message && s.last_message->id == c.last_message_id)) {
    return c.last_activity_at;
  }
  return std::max(c.created_at, s.last_message ? s.last_message->created_at : Micros{0});
}

}  // namespace

boost::asio::awaitable<Result<std::pair<ChatRecord, MemberRecord>>> ChatService::membership(
    std::int64_t me, std::int64_t chat_id) {
  auto member = co_await store_.chats().find_member(chat_id, me);
  if (!member) co_return not_a_member();
  auto chat = co_await store_.chats().find_chat(chat_id);
  if (!chat) co_return not_a_member();
  co_return std::make_pair(std::move(*chat), std::move(*member));
}

boost::asio::awaitable<bool> ChatService::exists(std::int64_t chat_id) {
  co_return (co_await store_.chats().find_chat(chat_id)).has_value();
}

boost::asio::awaitable<Result<std::vector<ChatSummary>>> ChatService::list(std::int64_t me) {
  // The store lists by the chats' own activity; hidden messages move a few back.
  auto chats = co_await store_.chats().summaries(me);
  std::stable_sort(chats.begin(), chats.end(), [](const ChatSummary& a, const ChatSummary& b) {
    const Micros x = activity_seen(a);
    const Micros y = activity_seen(b);
    return x != y ? x > y : a.chat.id > b.chat.id;
  });
  co_return chats;
}

boost::asio::awaitable<Result<ChatSummary>> ChatService::get(std::int64_t me,
                                                             std::int64_t chat_id) {
  auto summary = co_await store_.chats().summary(chat_id, me);
  if (!summary) co_return not_a_member();
  co_return std::move(*summary);
}

boost::asio::awaitable<Result<CreatedChatView>> ChatService::create(std::int64_t me,
                                                                    CreateChatInput in) {
  FieldErrors errors = std::move(in.errors);
  const bool is_private = in.type && *in.type == "private";
  if (in.type && !is_private && *in.type != "group") {
    errors.add("type", "\"" + *in.type + "\" is not a valid choice.");
  }
  std::vector<std::int64_t> ids;
  if (in.member_ids) {
    // Distinct ids in the order given, found in linear time (a list may be huge), and no
    // further than one past the limit: the request fails beyond it anyway.
    std::unordered_set<std::int64_t> seen;
    for (auto id : *in.member_ids) {
      if (id != me && seen.insert(id).second) ids.push_back(id);
      if (ids.size() > kMaxGroupMembers) break;
    }
  }
  if (in.type && *in.type == "group") {
    if (!in.name && !errors.has("name")) errors.add("name", "This field is required.");
    if (in.name) {
      if (auto p = chat_name_problem(*in.name)) errors.add("name", *p);
    }
    if (ids.size() + 1 > kMaxGroupMembers) errors.add("member_ids", "Too many members.");
  }
  if (is_private && in.member_ids && !errors.has("member_ids") &&
      (in.member_ids->size() != 1 || ids.size() != 1)) {
    errors.add("member_ids", "A private chat needs exactly one other member.");
  }
  if (is_private && !in.member_ids && !errors.has("member_ids"))
    errors.add("member_ids", "This field is required.");
  if (!errors.empty()) co_return Error::validation(std::move(errors));

  // Every member must be an active user; DRF names the first unknown primary key.
  std::vector<MemberRecord> members;
  auto creator = co_await store_.users().find_by_id(me);
  if (!creator) co_return Error::unauthenticated("User not found", "user_not_found");
  members.push_back({me, creator->username, is_private ? Role::member : Role::owner, 0, 0, 0});
  for (auto id : ids) {
    auto user = co_await store_.users().find_by_id(id);
    if (user && !user->is_active && is_private) {
      // A pair that has a chat gets it back (API.md: 200), the other side deactivated
      // since or not; only a new chat needs an active user.
      if (auto existing = co_await store_.chats().find_private_chat(me, id)) {
        if (auto summary = co_await store_.chats().summary(*existing, me)) {
          co_return CreatedChatView{std::move(*summary), false};
        }
      }
    }
    if (!user || !user->is_active) {
      co_return Error::field("member_ids",
                             "Invalid pk \"" + std::to_string(id) + "\" - object does not exist.");
    }
    members.push_back({id, user->username, Role::member, 0, 0, 0});
  }

  NewChat chat;
  chat.type = is_private ? ChatType::private_chat : ChatType::group;
  chat.name = is_private ? std::string() : *in.name;
  chat.now = now_micros();
  for (const auto& m : members) chat.members.emplace_back(m.user_id, m.role);

  ChatSummary shape;
  shape.chat.type = chat.type;
  shape.chat.name = chat.name;
  shape.chat.created_at = chat.now;
  shape.members = members;
  auto events = [shape, me](const CreatedChat& created) mutable {
    shape.chat.id = created.chat_id;
    // A new chat looks the same to every member: nothing read, no message yet.
    return std::vector<NewEvent>{
        chat_event("chat_created", created.chat_id, &shape, std::nullopt, me)};
  };
  for (int attempt = 0; attempt < kDecisionAttempts; ++attempt) {
    auto created = co_await store_.chats().create_chat(chat, events);
    auto summary = co_await store_.chats().summary(created.chat_id, me);
    if (summary) co_return CreatedChatView{std::move(*summary), created.created};
    // Deleted in between. A pair's chat found, not made, is made anew, as a request after
    // the deletion would; a new group deleted already (by its creator) is gone.
    if (created.created) co_return not_a_member();
  }
  co_return Error::unavailable();
}

boost::asio::awaitable<Result<ChatSummary>> ChatService::rename(std::int64_t me,
                                                                std::int64_t chat_id,
                                                                std::optional<std::string> name,
                                                                FieldErrors errors, bool partial) {
  co_return co_await until_decided<ChatSummary>(
      [&] { return try_rename(me, chat_id, name, errors, partial); });
}

boost::asio::awaitable<std::optional<Result<ChatSummary>>> ChatService::try_rename(
    std::int64_t me, std::int64_t chat_id, const std::optional<std::string>& name,
    FieldErrors errors, bool partial) {
  auto summary = co_await store_.chats().summary(chat_id, me);
  if (!summary) co_return not_a_member();
  const auto& mine = *std::find_if(summary->members.begin(), summary->members.end(),
                                   [&](const MemberRecord& m) { return m.user_id == me; });
  if (!allowed(Action::rename_chat, {summary->chat.type, mine.role})) co_return Error::forbidden();
  if (!name && partial && errors.empty()) co_return std::move(*summary);  // nothing to change
  if (!name && !errors.has("name")) errors.add("name", "This field is required.");
  if (name) {
    if (auto p = chat_name_problem(*name)) errors.add("name", *p);
  }
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  // The same name again changes nothing: no event (each names every member; repeated, they
  // would fill the log and the members' sockets for nothing).
  if (*name == summary->chat.name) co_return std::move(*summary);

  auto events = [](const RenamedChat& renamed) {
    return std::vector<NewEvent>{chat_update_event(renamed)};
  };
  const Standing by{chat_id, me, mine.role};
  auto renamed = co_await store_.chats().rename_chat(by, *name, std::move(events));
  if (!renamed) co_return std::nullopt;
  co_return co_await get(me, chat_id);
}

boost::asio::awaitable<Result<Ok>> ChatService::remove(std::int64_t me, std::int64_t chat_id) {
  co_return co_await until_decided<Ok>([&] { return try_remove(me, chat_id); });
}

boost::asio::awaitable<std::optional<Result<Ok>>> ChatService::try_remove(std::int64_t me,
                                                                          std::int64_t chat_id) {
  auto m = co_await membership(me, chat_id);
  if (!m) co_return std::move(m).error();
  if (!allowed(Action::delete_chat, {m->first.type, m->second.role})) co_return Error::forbidden();
  auto events = [chat_id](const std::vector<MemberRecord>& members) {
    // The chat is gone after this transaction, so each former member gets their own copy.
    std::vector<NewEvent> out;
    out.reserve(members.size());
    for (const auto& member : members) {
      out.push_back(chat_event("chat_deleted", chat_id, nullptr, member.user_id));
    }
    return out;
  };
  const Standing by{chat_id, me, m->second.role};
  if (!co_await store_.chats().delete_chat(by, std::move(events))) co_return std::nullopt;
  co_return Ok{};
}

boost::asio::awaitable<Result<MemberRecord>> ChatService::add_member(std::int64_t me,
                                                                     std::int64_t chat_id,
                                                                     MemberInput in) {
  co_return co_await until_decided<MemberRecord>([&] { return try_add_member(me, chat_id, in); });
}

boost::asio::awaitable<std::optional<Result<MemberRecord>>> ChatService::try_add_member(
    std::int64_t me, std::int64_t chat_id, const MemberInput& in) {
  auto summary = co_await store_.chats().summary(chat_id, me);
  if (!summary) co_return not_a_member();
  const auto mine = *std::find_if(summary->members.begin(), summary->members.end(),
                                  [&](const MemberRecord& m) { return m.user_id == me; });
  const Actor actor{summary->chat.type, mine.role};
  if (!allowed(Action::add_member, actor)) co_return Error::forbidden();

  FieldErrors errors = in.errors;
  Role role = Role::member;
  if (in.role) {
    auto parsed = parse_role(*in.role);
    if (!parsed || *parsed == Role::owner) {
      errors.add("role", "\"" + *in.role + "\" is not a valid choice.");
    } else {
      role = *parsed;
    }
  }
  if (!in.user_id && !errors.has("user_id")) errors.add("user_id", "This field is required.");
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  if (role == Role::admin && !allowed(Action::add_admin, actor)) co_return Error::forbidden();

  auto user = co_await store_.users().find_by_id(*in.user_id);
  if (!user || !user->is_active) {
    co_return Error::field(
        "user_id", "Invalid pk \"" + std::to_string(*in.user_id) + "\" - object does not exist.");
  }
  // A group's cap at creation holds for additions too. Adds racing each other may pass it
  // by a few: it bounds growth, it is not an exact count.
  const bool already = std::any_of(summary->members.begin(), summary->members.end(),
                                   [&](const MemberRecord& m) { return m.user_id == user->id; });
  if (!already && summary->members.size() >= kMaxGroupMembers) {
    co_return Error::field("non_field_errors",
                           "A group has at most " + std::to_string(kMaxGroupMembers) + " members.");
  }
  if (already) co_return Error::field("user_id", "This user is already a member of the chat.");
  ChatSummary shape = *summary;
  shape.members.push_back({user->id, user->username, role, now_micros(), 0, 0});
  auto events = [shape](const MemberChange& c) {
    // The new member learns of the chat first: a node that hears the chat for no one
    // starts hearing it at this event (from its seq on), and so still delivers the
    // member_added after it to the new member's sockets.
    const ChatSummary* seen = c.seen_by_member ? &*c.seen_by_member : &shape;
    return std::vector<NewEvent>{
        chat_event("chat_created", c.chat_id, seen, c.user_id, c.user_id),
        to_event(c.chat_id, member_event("member_added", c.chat_id, c.user_id, c.role))};
  };
  const Standing by{chat_id, me, mine.role};
  auto change =
      co_await store_.chats().add_member(by, user->id, role, now_micros(), std::move(events));
  // Added meanwhile, the chat deleted meanwhile, or the caller's rights changed: checked again.
  if (!change) co_return std::nullopt;
  auto member = co_await store_.chats().find_member(chat_id, user->id);
  if (!member) co_return not_a_member();
  co_return std::move(*member);
}

boost::asio::awaitable<Result<MemberRecord>> ChatService::change_role(std::int64_t me,
                                                                      std::int64_t chat_id,
                                                                      std::int64_t user_id,
                                                                      MemberInput in) {
  // The change is made only if the roles it was checked against still hold (RoleChange).
  co_return co_await until_decided<MemberRecord>(
      [&] { return try_change_role(me, chat_id, user_id, in); });
}

boost::asio::awaitable<std::optional<Result<MemberRecord>>> ChatService::try_change_role(
    std::int64_t me, std::int64_t chat_id, std::int64_t user_id, const MemberInput& in) {
  auto m = co_await membership(me, chat_id);
  if (!m) co_return std::move(m).error();
  if (!allowed(Action::change_role, {m->first.type, m->second.role})) co_return Error::forbidden();
  // The member is the object of this request: as DRF's get_object(), a missing one is a
  // 404 before anything in the body is looked at.
  auto target = co_await store_.chats().find_member(chat_id, user_id);
  if (!target) co_return Error::not_found();
  FieldErrors errors = in.errors;
  std::optional<Role> role;
  if (in.role) {
    role = parse_role(*in.role);
    if (!role || *role == Role::owner)
      errors.add("role", "\"" + *in.role + "\" is not a valid choice.");
  } else if (in.partial && errors.empty()) {
    co_return std::move(*target);  // nothing to change: the member as they are
  } else if (!errors.has("role")) {
    errors.add("role", "This field is required.");
  }
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  if (target->role == Role::owner)
    co_return Error::field("role", "The owner's role cannot be changed.");
  auto events = [](const MemberChange& c) {
    return std::vector<NewEvent>{
        to_event(c.chat_id, member_event("member_updated", c.chat_id, c.user_id, c.role))};
  };
  if (target->role != *role) {
    const RoleChange change{chat_id, user_id, target->role, *role, me, m->second.role};
    auto changed = co_await store_.chats().set_role(change, std::move(events));
    if (!changed) co_return std::nullopt;  // not as checked any more
  }
  auto member = co_await store_.chats().find_member(chat_id, user_id);
  if (!member) co_return Error::not_found();
  co_return std::move(*member);
}

boost::asio::awaitable<Result<Ok>> ChatService::remove_member(std::int64_t me, std::int64_t chat_id,
                                                              std::int64_t user_id) {
  co_return co_await until_decided<Ok>([&] { return try_remove_member(me, chat_id, user_id); });
}

boost::asio::awaitable<std::optional<Result<Ok>>> ChatService::try_remove_member(
    std::int64_t me, std::int64_t chat_id, std::int64_t user_id) {
  auto m = co_await membership(me, chat_id);
  if (!m) co_return std::move(m).error();
  const auto& [chat, mine] = *m;
  if (chat.type == ChatType::private_chat) {
    co_return Error::forbidden();  // one deletes a private chat instead
  }
  auto members = co_await store_.chats().members(chat_id);
  auto target =
      std::find_if(members.begin(), members.end(), [&](auto& x) { return x.user_id == user_id; });
  if (target == members.end()) co_return Error::not_found();
  const bool leaving = user_id == me;
  if (!leaving && !allowed(Action::remove_member, {chat.type, mine.role}, target->role)) {
    co_return Error::forbidden();
  }
  // Succession is decided inside the removal's transaction, so members leaving at the same
  // moment cannot leave a group without an owner, or an empty group behind.
  auto choose_owner = [](const MemberRecord& leaving, const std::vector<MemberRecord>& remaining) {
    std::optional<std::int64_t> successor;
    if (leaving.role != Role::owner) return successor;
    for (Role wanted : {Role::admin, Role::member}) {  // the oldest admin, else the oldest member
      for (const auto& x : remaining) {
        if (!successor && x.role == wanted) successor = x.user_id;
      }
    }
    return successor;
  };
  auto events = [](const Departure& d) {
    const auto& c = d.change;
    if (d.chat_deleted) {
      return std::vector<NewEvent>{chat_event("chat_deleted", c.chat_id, nullptr, c.user_id)};
    }
    std::vector<NewEvent> out{
        to_event(c.chat_id, member_event("member_removed", c.chat_id, c.user_id, c.role)),
        to_event(c.chat_id, member_event("member_removed", c.chat_id, c.user_id, c.role),
                 c.user_id)};
    if (c.promoted_user_id) {
      out.push_back(to_event(
          c.chat_id, member_event("member_updated", c.chat_id, *c.promoted_user_id, Role::owner)));
    }
    return out;
  };
  std::optional<RemovalBy> by;
  if (!leaving) by = RemovalBy{{chat_id, me, mine.role}, target->role};
  auto departure = co_await store_.chats().remove_member(
      chat_id, user_id, by, std::move(choose_owner), std::move(events));
  if (!departure) co_return std::nullopt;  // gone meanwhile, or not as checked: checked again
  co_return Ok{};
}

boost::asio::awaitable<Result<ReadOutcome>> ChatService::mark_read(
    std::int64_t me, std::int64_t chat_id, std::optional<std::int64_t> last_read_message_id,
    FieldErrors errors) {
  auto m = co_await membership(me, chat_id);
  if (!m) co_return std::move(m).error();
  if (!last_read_message_id && !errors.has("last_read_message_id"))
    errors.add("last_read_message_id", "This field is required.");
  if (last_read_message_id && *last_read_message_id < 0)
    errors.add("last_read_message_id", "Ensure this value is greater than or equal to 0.");
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  const std::int64_t value = *last_read_message_id;
  auto events = [](const WatermarkChange& c) {
    return std::vector<NewEvent>{to_event(c.chat_id, read_event(c.chat_id, c.user_id, c.value))};
  };
  ReadOutcome out;
  out.watermark = co_await store_.chats().mark_read(chat_id, me, value, std::move(events));
  out.unread_count = (co_await store_.chats().unread_count(chat_id, me)).count;
  co_return out;
}

}  // namespace chat::chats
