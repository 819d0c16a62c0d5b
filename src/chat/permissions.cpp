#include "chat/permissions.hpp"

namespace chat::chats {

using store::ChatType;
using store::Role;

bool allowed(Action action, const Actor& a, Role target_role) {
  const bool group = a.chat_type == ChatType::group;
  const bool manager = group && (a.role == Role::owner || a.role == Role::admin);
  switch (action) {
    case Action::edit_message:
      return a.is_sender;
    case Action::delete_for_everyone:
      return a.is_sender || manager;
    case Action::pin:
      return !group || manager;
    case Action::rename_chat:
      return manager;
    case Action::delete_chat:
      return !group || a.role == Role::owner;
    case Action::add_member:
      return manager;
    case Action::add_admin:
    case Action::change_role:
      return group && a.role == Role::owner;
    case Action::remove_member:
      if (!manager || target_role == Role::owner) return false;
      return a.role == Role::owner || target_role == Role::member;
  }
  return false;
}

}  // namespace chat::chats
