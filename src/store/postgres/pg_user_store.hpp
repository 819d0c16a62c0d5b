#pragma once

#include "store/user_store.hpp"

namespace chat::store::postgres {

class PgDatabase;

class PgUserStore final : public UserStore {
 public:
  explicit PgUserStore(PgDatabase& db) : db_(db) {}

  boost::asio::awaitable<std::optional<UserRecord>> find_by_id(std::int64_t id) override;
  boost::asio::awaitable<std::optional<UserRecord>> find_by_username_key(
      std::string username_key) override;
  boost::asio::awaitable<TokenHolder> find_token_holder(std::int64_t user_id,
                                                        std::string session) override;
  boost::asio::awaitable<std::optional<UserRecord>> create(NewUser user) override;
  boost::asio::awaitable<std::optional<UpdatedUser>> update(std::int64_t id,
                                                            UserChanges changes) override;
  boost::asio::awaitable<void> set_last_seen(std::vector<std::int64_t> ids, Micros when) override;
  boost::asio::awaitable<UserPage> list(UserFilter filter, int limit, std::int64_t offset) override;

 private:
  PgDatabase& db_;
};

}  // namespace chat::store::postgres
