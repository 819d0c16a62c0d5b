// Who may do what in a chat: every rule of API.md in one table, asked by the services
// for REST and WebSocket alike. Membership itself (404 for outsiders) is checked before.
#pragma once

#include "store/chat_records.hpp"

namespace chat::chats {

enum class Action {
  edit_message,         // sender only
  delete_for_everyone,  // sender, or a group's owner/admin
  pin,                  // private: any member; group: owner/admin (unpin alike)
  rename_chat,          // group owner/admin
  delete_chat,          // group: owner; private: either member
  add_member,           // group owner/admin
  add_admin,            // group owner
  change_role,          // group owner
  remove_member,        // group owner/admin (an admin not the owner or another admin)
};

struct Actor {
  store::ChatType chat_type;
  store::Role role;
  bool is_sender = false;  // of the message acted on
};

// `target_role`: the role of the member acted on, for remove_member.
bool allowed(Action action, const Actor& actor, store::Role target_role = store::Role::member);

}  // namespace chat::chats
