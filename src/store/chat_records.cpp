#include "store/chat_records.hpp"

namespace chat::store {

const char* chat_type_name(ChatType t) {
  return t == ChatType::private_chat ? "private" : "group";
}

const char* role_name(Role r) {
  switch (r) {
    case Role::owner:
      return "owner";
    case Role::admin:
      return "admin";
    case Role::member:
      return "member";
  }
  return "member";
}

std::optional<Role> parse_role(std::string_view s) {
  if (s == "owner") return Role::owner;
  if (s == "admin") return Role::admin;
  if (s == "member") return Role::member;
  return std::nullopt;
}

}  // namespace chat::store
