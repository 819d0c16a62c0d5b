#include "store/sqlite/admin_store.hpp"

#include "store/sql_columns.hpp"
#include "store/sqlite/database.hpp"
#include "store/sqlite/rows.hpp"

namespace chat::store::sqlite {
namespace {

// unicode_lower() is registered on every connection (connection.cpp): SQLite's own lower()
// folds ASCII only, and chat names are often Cyrillic.
// A chat being purged after its deletion (CHAT_SQL_NOT_PURGING) is gone here too.
constexpr const char* kCountChats =
    "SELECT count(*) FROM chats c WHERE c.purging = 0 AND "
    "(?1 = '' OR instr(unicode_lower(c.name), ?1) > 0)";
constexpr const char* kListChats =
    "SELECT " CHAT_SQL_OVERVIEW_COLUMNS
    " FROM chats c WHERE c.purging = 0 AND (?1 = '' OR instr(unicode_lower(c.name), ?1) > 0) "
    "ORDER BY c.id DESC LIMIT ?2 OFFSET ?3";
constexpr const char* kChat =
    "SELECT " CHAT_SQL_OVERVIEW_COLUMNS " FROM chats c WHERE c.id = ?1 AND c.purging = 0";

// ?1 = 0: any chat. The primary key (or messages_chat) gives the order without sorting.
constexpr const char* kMessages =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE (?1 = 0 OR m.chat_id = ?1) AND m.id < ?2 AND " CHAT_SQL_NOT_PURGING(
        "m.chat_id") " ORDER BY m.id DESC LIMIT ?3";
// Bounded and ordered by the index's own rowid (= m.id), so FTS5 walks its matches
// downwards from the cursor and LIMIT stops it (chat_store.cpp's kSearch).
constexpr const char* kSearchMessages =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages_fts f JOIN messages m ON m.id = f.rowid "
    "LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE messages_fts MATCH ?4 AND (?1 = 0 OR m.chat_id = ?1) AND " CHAT_SQL_NOT_PURGING(
        "m.chat_id") " AND f.rowid < ?2 ORDER BY f.rowid DESC LIMIT ?3";

constexpr const char* kCountUsers = "SELECT count(*) FROM users";
constexpr const char* kCountAllChats = "SELECT count(*) FROM chats WHERE purging = 0";
// All messages less those of purging chats (each a range of messages_chat): a count(*) of
// the whole table keeps its fast path.
constexpr const char* kCountMessages =
    "SELECT (SELECT count(*) FROM messages) - (SELECT count(*) FROM messages WHERE chat_id IN "
    "(SELECT id FROM chats WHERE purging = 1))";
// Every new message logs one `message` event (a retried send logs none); events_time
// makes this a range scan over the last minute of the log.
constexpr const char* kCountSentSince =
    "SELECT count(*) FROM events WHERE created_at >= ?1 AND type = 'message' "
    "AND " CHAT_SQL_NOT_PURGING("chat_id");

ChatOverview read_overview(const Statement& s) {
  ChatOverview o;
  o.chat = read_chat(s);
  o.member_count = s.int64(6);
  o.message_count = s.int64(7);
  return o;
}

std::int64_t scalar(Connection& c, const char* sql) {
  auto s = c.prepare(sql);
  return s.step() ? s.int64(0) : 0;
}

}  // namespace

boost::asio::awaitable<ChatOverviewPage> SqliteAdminStore::chats(std::string name_folded, int limit,
                                                                 std::int64_t offset) {
  auto q = [name = std::move(name_folded), limit, offset](Connection& c) {
    ChatOverviewPage page;
    {
      auto count = c.prepare(kCountChats);
      count.bind(1, name);
      if (count.step()) page.count = count.int64(0);
    }
    auto s = c.prepare(kListChats);
    s.bind(1, name).bind(2, limit).bind(3, offset);
    while (s.step()) page.chats.push_back(read_overview(s));
    return page;
  };
  co_return co_await db_.scan(std::move(q));
}

boost::asio::awaitable<std::optional<ChatOverview>> SqliteAdminStore::chat(std::int64_t chat_id) {
  auto q = [chat_id](Connection& c) {
    auto s = c.prepare(kChat);
    s.bind(1, chat_id);
    return first_row(s, read_overview);
  };
  co_return co_await db_.scan(std::move(q));
}

boost::asio::awaitable<HistoryPage> SqliteAdminStore::messages(MessageFilter filter) {
  auto q = [f = std::move(filter)](Connection& c) {
    const bool search = !f.terms.empty();
    auto s = c.prepare(search ? kSearchMessages : kMessages);
    // One more than asked for tells whether an older page exists.
    s.bind(1, f.chat_id.value_or(0)).bind(2, f.before.value_or(INT64_MAX)).bind(3, f.limit + 1);
    if (search) {
      std::vector<std::int64_t> chats;  // one chat: its matches alone
      if (f.chat_id.value_or(0) != 0) chats.push_back(*f.chat_id);
      s.bind(4, fts_match(f.terms, chats));
    }
    HistoryPage page;
    while (s.step()) page.messages.push_back(read_message(s));
    if (page.messages.size() > static_cast<std::size_t>(f.limit)) {
      page.messages.pop_back();
      page.has_more = true;
    }
    return page;
  };
  co_return co_await db_.scan(std::move(q));
}

boost::asio::awaitable<SiteCounts> SqliteAdminStore::counts(Micros since) {
  auto q = [since](Connection& c) {
    SiteCounts n;
    n.users = scalar(c, kCountUsers);
    n.chats = scalar(c, kCountAllChats);
    n.messages = scalar(c, kCountMessages);
    auto s = c.prepare(kCountSentSince);
    s.bind(1, since);
    if (s.step()) n.messages_since = s.int64(0);
    return n;
  };
  co_return co_await db_.scan(std::move(q));
}

}  // namespace chat::store::sqlite
