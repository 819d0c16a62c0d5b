#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

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
  // A term that begins another adds nothing (each matches as a prefix).
  EXPECT_EQ(search_terms("a ab abc b ba"), (std::vector<std::string>{"abc", "ba"}));
  // Every word, whole: a search needs them all.
  EXPECT_EQ(search_terms("1 2 3 4 5 6 7 8 9 0").size(), 10U);
  EXPECT_EQ(search_terms(std::string(500, 'x')).front(), std::string(500, 'x'));
  EXPECT_EQ(search_terms_problem(search_terms("")), "Enter at least one word to search for.");
  std::string many;
  for (std::size_t i = 0; i < kMaxSearchTerms; ++i) {
    many += 'w';  // piece by piece: g++ 12 warns falsely (-Wrestrict) about "w" + string
    many += std::to_string(100 + i);  // none begins another
    many += ' ';
  }
  EXPECT_FALSE(search_terms_problem(search_terms(many)));
  EXPECT_EQ(search_terms_problem(search_terms(many + "more")),
            "Enter at most " + std::to_string(kMaxSearchTerms) + " words to search for.");
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

// A page of history is written as text, every other message as a json::object: both
// must be the same objects, whatever the fields hold.
TEST(MessageJson, APageAsTextHasTheSameObjectsAsTheTree) {
  std::vector<store::MessageRecord> page(5);
  for (std::size_t i = 0; i < page.size(); ++i) {
    page[i].id = 100 - static_cast<std::int64_t>(i);
    page[i].chat_id = 7;
    page[i].sender_id = 1;
    page[i].sender_username = "ann";
    page[i].created_at = 1'700'000'000'123'456 + static_cast<Micros>(i);
  }
  page[0].text = "quotes \" and \\ backslashes, a\nnew line, a\ttab, \x01 and \x7f";
  page[0].client_id = "c-1";
  page[1].text = "caf\xc3\xa9 \xf0\x9f\x98\x80 \u2028";
  page[1].sender_id = 2;
  page[1].sender_username = "b\"ob";
  page[1].client_id = "not-yours";
  page[1].edited_at = 1'700'000'100'000'000;
  page[2].is_deleted = true;
  page[3].forwarded_from = 42;
  page[3].text = "</script><script>";
  page[4].sender_id = 0;  // the sender's account is gone
  page[4].sender_username = "";
  store::Watermarks w;
  w.lowest_read = {{2, 98}, {1, 100}};
  w.lowest_delivered = {{2, 100}, {1, 100}};

  for (bool has_more : {false, true}) {
    const auto text = message_page_json(page, 1, w, has_more);
    const auto parsed = boost::json::parse(text).as_object();
    ASSERT_EQ(parsed.size(), 2U);
    EXPECT_EQ(parsed.at("has_more").as_bool(), has_more);
    const auto& results = parsed.at("results").as_array();
    ASSERT_EQ(results.size(), page.size());
    for (std::size_t i = 0; i < page.size(); ++i) {
      const auto tree = message_json(page[i], 1, w);
      EXPECT_EQ(results[i].as_object(), tree) << i << ": " << boost::json::serialize(tree);
      // The same members in the same order, not only equal as a set.
      std::vector<std::string> a;
      std::vector<std::string> b;
      for (const auto& kv : results[i].as_object()) a.emplace_back(kv.key());
      for (const auto& kv : tree) b.emplace_back(kv.key());
      EXPECT_EQ(a, b);
    }
  }
  // The fields that depend on the viewer and the watermarks.
  const auto first =
      boost::json::parse(message_page_json(page, 1, w, false)).as_object().at("results").as_array();
  EXPECT_EQ(first[0].as_object().at("client_id").as_string(), "c-1");
  EXPECT_TRUE(first[1].as_object().at("client_id").is_null());
  EXPECT_EQ(first[0].as_object().at("status").as_string(), "delivered");
  EXPECT_TRUE(first[4].as_object().at("sender_id").is_null());
  EXPECT_EQ(message_page_json({}, 1, w, false), R"({"results":[],"has_more":false})");
}

namespace {

std::vector<std::string> keys_of(const boost::json::object& o) {
  std::vector<std::string> out;
  for (const auto& kv : o) out.emplace_back(kv.key());
  return out;
}

}  // namespace

// Chats are written as text: each chat of the list must hold API.md's fields, in order,
// with what the summary holds, and the single chat and the events' chat the same.
TEST(ChatJson, TheListAsTextHoldsEveryFieldOfEachChat) {
  std::vector<store::ChatSummary> chats(2);
  auto& group = chats[0];
  group.chat.id = 7;
  group.chat.type = store::ChatType::group;
  group.chat.name = "the \"team\"\n";
  group.chat.created_at = 1'700'000'000'000'001;
  group.members = {{1, "ann", store::Role::owner, 0, 90, 90},
                   {2, "b\\ob", store::Role::admin, 0, 80, 95}};
  group.last_message.emplace();
  group.last_message->id = 90;
  group.last_message->chat_id = 7;
  group.last_message->sender_id = 1;
  group.last_message->sender_username = "ann";
  group.last_message->text = "hi";
  group.unread_count = 3;
  group.last_read_message_id = 87;
  group.pinned_message_ids = {85, 90};
  auto& pair = chats[1];
  pair.chat.id = 8;
  pair.chat.type = store::ChatType::private_chat;
  pair.members = {{1, "ann", store::Role::member, 0, 0, 0},
                  {3, "cat", store::Role::member, 0, 0, 0}};

  const auto list = boost::json::parse(chat_list_json(chats, 1)).as_array();
  ASSERT_EQ(list.size(), 2U);
  const std::vector<std::string> fields{"id",
                                        "type",
                                        "name",
                                        "members",
                                        "created_at",
                                        "last_message",
                                        "unread_count",
                                        "last_read_message_id",
                                        "pinned_message_ids"};
  const auto& g = list[0].as_object();
  EXPECT_EQ(keys_of(g), fields);
  EXPECT_EQ(g.at("id").as_int64(), 7);
  EXPECT_EQ(g.at("type").as_string(), "group");
  EXPECT_EQ(g.at("name").as_string(), "the \"team\"\n");
  EXPECT_EQ(g.at("members"), boost::json::parse(R"([{"id":1,"username":"ann","role":"owner"},)"
                                                R"({"id":2,"username":"b\\ob","role":"admin"}])"));
  EXPECT_EQ(g.at("created_at").as_string(), "2023-11-14T22:13:20.000001Z");
  EXPECT_EQ(g.at("last_message").as_object(),
            message_json(*group.last_message, 1, watermarks_of(group.members)));
  EXPECT_EQ(g.at("last_message").as_object().at("status").as_string(), "delivered");
  EXPECT_EQ(g.at("unread_count").as_int64(), 3);
  EXPECT_EQ(g.at("last_read_message_id").as_int64(), 87);
  EXPECT_EQ(g.at("pinned_message_ids"), boost::json::parse("[85,90]"));
  const auto& p = list[1].as_object();
  EXPECT_EQ(keys_of(p), fields);
  EXPECT_EQ(p.at("type").as_string(), "private");
  EXPECT_EQ(p.at("name").as_string(), "");
  EXPECT_TRUE(p.at("last_message").is_null());
  EXPECT_EQ(p.at("pinned_message_ids"), boost::json::array());

  EXPECT_EQ(boost::json::parse(chat_json(group, 1)).as_object(), g);
  const auto event = chat_event("chat_updated", 7, &group, 2);
  EXPECT_EQ(event.chat_id, 7);
  EXPECT_EQ(event.user_id, 2);
  EXPECT_EQ(event.type, "chat_updated");
  const auto payload = boost::json::parse(event.payload).as_object();
  EXPECT_EQ(keys_of(payload), (std::vector<std::string>{"type", "chat_id", "chat"}));
  EXPECT_EQ(payload.at("type").as_string(), "chat_updated");
  EXPECT_EQ(payload.at("chat_id").as_int64(), 7);
  const auto& shared = payload.at("chat").as_object();
  EXPECT_EQ(keys_of(shared), (std::vector<std::string>{"id", "type", "name", "members",
                                                       "created_at", "pinned_message_ids"}));
  EXPECT_EQ(shared.at("members"), g.at("members"));
  EXPECT_EQ(shared.at("name"), g.at("name"));
  const auto gone = chat_event("chat_deleted", 7, nullptr);
  EXPECT_EQ(gone.payload, R"({"type":"chat_deleted","chat_id":7})");
  EXPECT_FALSE(gone.user_id.has_value());
  EXPECT_EQ(member_json(group.members[1]), g.at("members").as_array()[1]);
  EXPECT_EQ(chat_list_json({}, 1), "[]");
}

// A rename's event holds what each recipient's copy is made of; the copies (as the hub
// sends them: head, variant, read state; as replays do, event_for_viewer) are the chat as
// that recipient sees it: the sender's client_id only on the sender's, a hider's own last
// message, each one's read state; the log's own keys never go out.
TEST(ChatJson, ARenameIsSentToEachMemberAsTheySeeTheChat) {
  store::RenamedChat renamed;
  auto& shared = renamed.shared;
  shared.chat.id = 7;
  shared.chat.type = store::ChatType::group;
  shared.chat.name = "renamed";
  shared.members = {{1, "ann", store::Role::owner, 0, 90, 90},
                    {2, "bob", store::Role::member, 0, 80, 95},
                    {3, "cat", store::Role::member, 0, 60, 60},
                    {4, "dan", store::Role::member, 0, 60, 60}};
  shared.pinned_message_ids = {85};
  shared.last_message.emplace();
  shared.last_message->id = 90;
  shared.last_message->chat_id = 7;
  shared.last_message->sender_id = 1;
  shared.last_message->sender_username = "ann";
  shared.last_message->text = "newest";
  shared.last_message->client_id = "cid-90";
  store::MessageRecord older = *shared.last_message;
  older.id = 60;
  older.text = "what cat still sees";
  older.client_id = std::nullopt;
  // cat and dan hid the newest message and the pinned one: one entry for both.
  renamed.seen_by_hiders = {{3, older, {}}, {4, older, {}}};

  const auto event = chat_update_event(renamed);
  EXPECT_EQ(event.type, "chat_updated");
  EXPECT_EQ(event.chat_id, 7);
  EXPECT_FALSE(event.user_id.has_value());
  const auto logged = boost::json::parse(event.payload).as_object();
  ASSERT_EQ(logged.at("seen_by_hiders").as_array().size(), 1U);
  EXPECT_EQ(logged.at("seen_by_hiders").at(0).at("users"), boost::json::parse("[3,4]"));
  const auto view = *chat_update_view(logged);
  const auto marks = watermarks_of(shared.members);
  auto copy_for = [&](std::int64_t viewer, std::int64_t unread, std::int64_t last_read) {
    return boost::json::parse(view.head + view.variants.at(view.variant_of(viewer)) +
                              ChatUpdateView::read_state(unread, last_read) + "}")
        .as_object();
  };
  auto expected = [&](std::int64_t viewer, const store::MessageRecord& last, std::int64_t unread,
                      std::int64_t last_read) {
    store::ChatSummary s = shared;
    if (viewer >= 3) s.pinned_message_ids.clear();
    s.last_message = last;
    s.unread_count = unread;
    s.last_read_message_id = last_read;
    return boost::json::object{{"type", "chat_updated"},
                               {"chat_id", 7},
                               {"chat", boost::json::parse(chat_json(s, viewer))}};
  };
  EXPECT_EQ(copy_for(1, 0, 90), expected(1, *shared.last_message, 0, 90));
  EXPECT_EQ(copy_for(2, 1, 80), expected(2, *shared.last_message, 1, 80));
  EXPECT_EQ(copy_for(3, 2, 60), expected(3, older, 2, 60));
  EXPECT_EQ(copy_for(4, 0, 60), expected(4, older, 0, 60));
  EXPECT_EQ(view.variants.size(), 3U);  // most members, the sender, the hiders
  EXPECT_EQ(copy_for(1, 0, 90).at("chat").at("last_message").at("client_id"), "cid-90");
  EXPECT_TRUE(copy_for(2, 1, 80).at("chat").at("last_message").at("client_id").is_null());
  EXPECT_EQ(copy_for(2, 1, 80).at("chat").at("last_message").at("status"),
            message_json(*shared.last_message, 2, marks).at("status"));

  // A replay fills in the reader's view as it is now: here bob's, with the newest message
  // since deleted; without a view, nothing of what the log held.
  store::EventRecord record{41, 7, std::nullopt, "chat_updated", event.payload};
  store::MemberView bobs;
  bobs.chat_id = 7;
  bobs.last_message = shared.last_message;
  bobs.last_message->is_deleted = true;
  bobs.last_message->text.clear();
  bobs.unread_count = 1;
  bobs.last_read_message_id = 80;
  bobs.pinned_message_ids = shared.pinned_message_ids;
  bobs.marks = marks;
  const std::vector<store::MemberView> views{bobs};
  auto replayed = event_for_viewer(record, 2, &views);
  EXPECT_EQ(replayed.at("seq").as_int64(), 41);
  replayed.erase("seq");
  EXPECT_EQ(replayed, expected(2, *bobs.last_message, 1, 80));
  const auto unknown = event_for_viewer(record, 2);
  EXPECT_TRUE(unknown.at("chat").at("last_message").is_null());
  EXPECT_EQ(unknown.at("chat").at("unread_count").as_int64(), 0);
  EXPECT_FALSE(unknown.contains("seen_by_hiders"));
  EXPECT_FALSE(unknown.contains("last_message"));

  // No message at all: null for everyone.
  store::RenamedChat empty;
  empty.shared = shared;
  empty.shared.last_message.reset();
  const auto bare =
      *chat_update_view(boost::json::parse(chat_update_event(empty).payload).as_object());
  const auto copy = boost::json::parse(bare.head + bare.variants.at(bare.variant_of(1)) +
                                       ChatUpdateView::read_state(0, 0) + "}")
                        .as_object();
  EXPECT_TRUE(copy.at("chat").at("last_message").is_null());
  // An event logged by an older release (no members' parts) goes out as it was logged.
  const auto old = chat_event("chat_updated", 7, &shared);
  EXPECT_FALSE(chat_update_view(boost::json::parse(old.payload).as_object()).has_value());
}
