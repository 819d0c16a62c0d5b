#include <gtest/gtest.h>

#include "chat/permissions.hpp"
#include "chat/search_query.hpp"
#include "chat/wire.hpp"

using namespace chat;
using namespace chat::chats;
using store::ChatType;
using store::Role;

TEST(Permissions, PrivateChats) {
  const Actor member{ChatType::private_chat, Role::member};
  EXPECT_TRUE(allowed(Action::pin, member));
  EXPECT_TRUE(allowed(Action::delete_chat, member));
  EXPECT_FALSE(allowed(Action::rename_chat, member));
  EXPECT_FALSE(allowed(Action::add_member, member));
  EXPECT_FALSE(allowed(Action::delete_for_everyone, member));
  EXPECT_TRUE(allowed(Action::delete_for_everyone, {ChatType::private_chat, Role::member, true}));
}

TEST(Permissions, GroupRoles) {
  const Actor owner{ChatType::group, Role::owner};
  const Actor admin{ChatType::group, Role::admin};
  const Actor member{ChatType::group, Role::member};
  for (Action a :
       {Action::pin, Action::rename_chat, Action::add_member, Action::delete_for_everyone}) {
    EXPECT_TRUE(allowed(a, owner));
    EXPECT_TRUE(allowed(a, admin));
    EXPECT_FALSE(allowed(a, member));
  }
  for (Action a : {Action::delete_chat, Action::add_admin, Action::change_role}) {
    EXPECT_TRUE(allowed(a, owner));
    EXPECT_FALSE(allowed(a, admin));
    EXPECT_FALSE(allowed(a, member));
  }
  EXPECT_TRUE(allowed(Action::remove_member, owner, Role::admin));
  EXPECT_FALSE(allowed(Action::remove_member, owner, Role::owner));
  EXPECT_TRUE(allowed(Action::remove_member, admin, Role::member));
  EXPECT_FALSE(allowed(Action::remove_member, admin, Role::admin));
  EXPECT_FALSE(allowed(Action::remove_member, member, Role::member));
  EXPECT_FALSE(allowed(Action::edit_message, owner));
  EXPECT_TRUE(allowed(Action::edit_message, {ChatType::group, Role::member, true}));
}

TEST(SearchTerms, SplitsFoldsAndBounds) {
  EXPECT_EQ(search_terms("Привет, МИР! hello-world"),
            (std::vector<std::string>{"привет", "мир", "hello", "world"}));
  EXPECT_TRUE(search_terms("  ,.;  ").empty());
  EXPECT_TRUE(search_terms("\xff\xfe").empty());
  EXPECT_EQ(search_terms("a a A").size(), 1U);
  EXPECT_EQ(search_terms("1 2 3 4 5 6 7 8 9 10").size(), kMaxSearchTerms);
  EXPECT_EQ(search_terms(std::string(500, 'x')).front().size(), kMaxTermLength);
  // Quotes and FTS operators never survive into a term.
  for (const auto& t : search_terms("\"x\" OR y* NEAR(z)")) {
    EXPECT_EQ(t.find_first_of("\"*()"), std::string::npos);
  }
}

TEST(MessageStatus, TheLeastAdvancedOtherMemberDecides) {
  store::MessageRecord m;
  m.id = 10;
  m.sender_id = 1;
  std::vector<store::MemberRecord> members{{1, "a", Role::member, 0, 10, 10},
                                           {2, "b", Role::member, 0, 5, 10},
                                           {3, "c", Role::member, 0, 10, 10}};
  EXPECT_STREQ(message_status(m, watermarks_of(members)), "delivered");
  members[1].last_read_message_id = 12;
  EXPECT_STREQ(message_status(m, watermarks_of(members)), "read");
  members[2].last_delivered_message_id = 9;
  members[2].last_read_message_id = 9;
  EXPECT_STREQ(message_status(m, watermarks_of(members)), "sent");
  // The sender's own watermarks never count, even when they are the lowest.
  std::vector<store::MemberRecord> pair{{1, "a", Role::member, 0, 0, 0},
                                        {2, "b", Role::member, 0, 10, 10}};
  EXPECT_STREQ(message_status(m, watermarks_of(pair)), "read");
  // Alone in a group: nobody else to wait for.
  EXPECT_STREQ(message_status(m, watermarks_of({pair[0]})), "read");
}
