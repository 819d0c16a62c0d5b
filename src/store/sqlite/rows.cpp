#include "store/sqlite/rows.hpp"

#include "common/unicode.hpp"

namespace chat::store::sqlite {

UserRecord read_user(const Statement& s) {
  UserRecord u;
  u.id = s.int64(0);
  u.username = s.text(1);
  u.email = s.text(2);
  u.password_hash = s.text(3);
  u.is_active = s.int64(4) != 0;
  u.is_staff = s.int64(5) != 0;
  u.is_superuser = s.int64(6) != 0;
  u.date_joined = s.int64(7);
  u.last_seen = s.optional_int64(8);
  return u;
}

ChatRecord read_chat(const Statement& s) {
  ChatRecord c;
  c.id = s.int64(0);
  c.type = s.text(1) == "private" ? ChatType::private_chat : ChatType::group;
  c.name = s.text(2);
  c.created_at = s.int64(3);
  c.last_message_id = s.int64(4);
  c.last_activity_at = s.int64(5);
  return c;
}

MemberRecord read_member(const Statement& s) {
  MemberRecord m;
  m.user_id = s.int64(0);
  m.username = s.text(1);
  m.role = parse_role(s.text(2)).value_or(Role::member);
  m.joined_at = s.int64(3);
  m.last_read_message_id = s.int64(4);
  m.last_delivered_message_id = s.int64(5);
  return m;
}

MessageRecord read_message(const Statement& s) {
  MessageRecord m;
  m.id = s.int64(0);
  m.chat_id = s.int64(1);
  m.sender_id = s.int64(2);
  m.sender_username = s.text(3);
  m.text = s.text(4);
  m.created_at = s.int64(5);
  m.edited_at = s.optional_int64(6);
  m.is_deleted = s.int64(7) != 0;
  m.forwarded_from = s.optional_int64(8);
  if (!s.is_null(9)) m.client_id = s.text(9);
  return m;
}

std::string fts_match(const std::vector<std::string>& terms,
                      const std::vector<std::int64_t>& chats) {
  std::string match = "text : (";
  for (std::size_t i = 0; i < terms.size(); ++i) {
    if (i > 0) match += " AND ";
    // Appended piece by piece: g++ 12 warns falsely (-Wrestrict) about "\"" + string.
    match += '"';
    match += unicode::search_folded_cyrillic(terms[i]);
    match += "\"*";
  }
  match += ')';
  if (!chats.empty()) {
    match += " AND chat_id : (";
    for (std::size_t i = 0; i < chats.size(); ++i) {
      if (i > 0) match += " OR ";
      match += std::to_string(chats[i]);
    }
    match += ')';
  }
  return match;
}

}  // namespace chat::store::sqlite
