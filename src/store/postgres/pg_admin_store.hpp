#pragma once

#include "store/admin_store.hpp"

namespace chat::store::postgres {

class PgDatabase;

class PgAdminStore final : public AdminStore {
 public:
  explicit PgAdminStore(PgDatabase& db) : db_(db) {}

  boost::asio::awaitable<ChatOverviewPage> chats(std::string name_folded, int limit,
                                                 std::int64_t offset) override;
  boost::asio::awaitable<std::optional<ChatOverview>> chat(std::int64_t chat_id) override;
  boost::asio::awaitable<HistoryPage> messages(MessageFilter filter) override;
  boost::asio::awaitable<SiteCounts> counts(Micros since) override;

 private:
  PgDatabase& db_;
};

}  // namespace chat::store::postgres
