#pragma once

#include "store/token_store.hpp"
#include "store/user_store.hpp"

namespace chat::store::sqlite {

class Connection;
class Database;

// Ends the sessions `end` names (UserChanges::end_sessions) inside the caller's
// transaction; returns them.
std::vector<std::string> end_sessions(Connection& conn, std::int64_t user_id,
                                      const SessionEnd& end);

class SqliteRefreshTokenStore final : public RefreshTokenStore {
 public:
  explicit SqliteRefreshTokenStore(Database& db) : db_(db) {}

  boost::asio::awaitable<bool> record(RefreshTokenRecord token, std::string password_hash) override;
  boost::asio::awaitable<TokenState> state(std::string jti) override;
  boost::asio::awaitable<TokenState> revoke(std::string jti, std::string session,
                                            std::int64_t keep_until, Micros now) override;
  boost::asio::awaitable<bool> rotate(std::string old_jti, RefreshTokenRecord next,
                                      Micros now) override;
  boost::asio::awaitable<std::int64_t> prune_expired(std::int64_t now_seconds) override;

 private:
  Database& db_;
};

}  // namespace chat::store::sqlite
