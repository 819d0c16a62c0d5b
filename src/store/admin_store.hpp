// What the staff-only admin endpoints read across all chats, whoever is a member: chat
// listings with their sizes, messages of any chat (deleted ones included) and site-wide
// counts. Implementations: store/sqlite and store/postgres. Thread-safe; each method
// completes on the caller's executor; an unreachable database throws store::Unavailable.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/chat_records.hpp"
#include "store/chat_store.hpp"

namespace chat::store {

struct ChatOverview {
  ChatRecord chat;
  std::int64_t member_count = 0;
  std::int64_t message_count = 0;  // deleted messages included
};

struct ChatOverviewPage {
  std::int64_t count = 0;  // all matches, not just this page
  std::vector<ChatOverview> chats;
};

struct MessageFilter {
  std::optional<std::int64_t> chat_id;
  // Words or prefixes that must all match (chat/search_query); empty: every message.
  std::vector<std::string> terms;
  std::optional<std::int64_t> before;  // ids below this one
  int limit = 50;
};

struct SiteCounts {
  std::int64_t users = 0;
  std::int64_t chats = 0;
  std::int64_t messages = 0;
  std::int64_t messages_since = 0;  // messages sent since the time asked about
};

class AdminStore {
 public:
  virtual ~AdminStore() = default;

  // Newest chats first. `name_folded`: a lower-cased part of the name (empty: any chat).
  virtual boost::asio::awaitable<ChatOverviewPage> chats(std::string name_folded, int limit,
                                                         std::int64_t offset) = 0;
  virtual boost::asio::awaitable<std::optional<ChatOverview>> chat(std::int64_t chat_id) = 0;
  // Newest first, deleted messages included (they never match `terms`: their text is gone).
  virtual boost::asio::awaitable<HistoryPage> messages(MessageFilter filter) = 0;
  // Counts over the whole database; `messages_since` counts messages sent at or after `since`.
  virtual boost::asio::awaitable<SiteCounts> counts(Micros since) = 0;
};

}  // namespace chat::store
