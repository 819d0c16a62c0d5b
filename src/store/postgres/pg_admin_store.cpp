#include "store/postgres/pg_admin_store.hpp"

#include "store/postgres/pg_database.hpp"
#include "store/postgres/pg_rows.hpp"
#include "store/sql_columns.hpp"

namespace chat::store::postgres {
namespace {

// lower() folds by the database's LC_CTYPE (any UTF-8 locale folds Cyrillic too).
constexpr const char* kCountChats =
    "SELECT count(*) FROM chats c WHERE $1 = '' OR strpos(lower(c.name), $1) > 0";
constexpr const char* kListChats = "SELECT " CHAT_SQL_OVERVIEW_COLUMNS
                                   " FROM chats c WHERE $1 = '' OR strpos(lower(c.name), $1) > 0 "
                                   "ORDER BY c.id DESC LIMIT $2 OFFSET $3";
constexpr const char* kChat = "SELECT " CHAT_SQL_OVERVIEW_COLUMNS " FROM chats c WHERE c.id = $1";

// $1 = 0: any chat. The primary key (or messages_chat) gives the order without sorting.
constexpr const char* kMessages =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE ($1::bigint = 0 OR m.chat_id = $1::bigint) AND m.id < $2 ORDER BY m.id DESC LIMIT $3";
constexpr const char* kSearchMessages =
    "SELECT " CHAT_SQL_MESSAGE_COLUMNS
    " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "WHERE m.search @@ to_tsquery('simple', $4) AND ($1::bigint = 0 OR m.chat_id = $1::bigint) "
    "AND m.id < $2 ORDER BY m.id DESC LIMIT $3";

// Every new message logs one `message` event (a retried send logs none); events_time makes
// the last minute a range scan.
constexpr const char* kCounts =
    "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM chats), "
    "(SELECT count(*) FROM messages), "
    "(SELECT count(*) FROM events WHERE created_at >= $1 AND type = 'message')";

ChatOverview read_overview(const PgResult& r, int i) {
  ChatOverview o;
  o.chat = read_chat(r, i);
  o.member_count = r.int64(i, 6);
  o.message_count = r.int64(i, 7);
  return o;
}

}  // namespace

boost::asio::awaitable<ChatOverviewPage> PgAdminStore::chats(std::string name_folded, int limit,
                                                             std::int64_t offset) {
  ChatOverviewPage page;
  auto count_params = pg_params(name_folded);
  auto count = co_await db_.query(kCountChats, std::move(count_params));
  page.count = count.rows() > 0 ? count.int64(0, 0) : 0;
  auto params = pg_params(std::move(name_folded), limit, offset);
  auto rows = co_await db_.query(kListChats, std::move(params));
  page.chats = all_rows<ChatOverview>(rows, read_overview);
  co_return page;
}

boost::asio::awaitable<std::optional<ChatOverview>> PgAdminStore::chat(std::int64_t chat_id) {
  auto params = pg_params(chat_id);
  auto r = co_await db_.query(kChat, std::move(params));
  co_return first_row(r, read_overview);
}

boost::asio::awaitable<HistoryPage> PgAdminStore::messages(MessageFilter filter) {
  const bool search = !filter.terms.empty();
  std::optional<std::string> query;
  if (search) {
    query = tsquery_prefixes(filter.terms);
    if (!query) co_return HistoryPage{};  // a word longer than any indexed
  }
  // One more than asked for tells whether an older page exists.
  auto params =
      pg_params(filter.chat_id.value_or(0), filter.before.value_or(INT64_MAX), filter.limit + 1);
  if (search) params.push_back(std::move(*query));
  auto r = co_await db_.query(search ? kSearchMessages : kMessages, std::move(params));
  HistoryPage page;
  page.messages = all_rows<MessageRecord>(r, read_message);
  if (page.messages.size() > static_cast<std::size_t>(filter.limit)) {
    page.messages.pop_back();
    page.has_more = true;
  }
  co_return page;
}

boost::asio::awaitable<SiteCounts> PgAdminStore::counts(Micros since) {
  auto params = pg_params(since);
  auto r = co_await db_.query(kCounts, std::move(params));
  SiteCounts n;
  if (r.rows() > 0) n = {r.int64(0, 0), r.int64(0, 1), r.int64(0, 2), r.int64(0, 3)};
  co_return n;
}

}  // namespace chat::store::postgres
