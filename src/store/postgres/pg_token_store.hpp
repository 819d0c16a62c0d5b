#pragma once

#include "store/token_store.hpp"
#include "store/user_store.hpp"

namespace chat::store::postgres {

class PgConnection;
class PgDatabase;

// Ends the sessions `end` names (UserChanges::end_sessions) inside the caller's
// transaction, which must hold the user's row locked (a rotation takes it FOR SHARE, so
// this statement's snapshot then has every rotation that went first); returns them.
boost::asio::awaitable<std::vector<std::string>> end_sessions(PgConnection& c, std::int64_t user_id,
                                                              const SessionEnd& end);

class PgRefreshTokenStore final : public RefreshTokenStore {
 public:
  explicit PgRefreshTokenStore(PgDatabase& db) : db_(db) {}

  boost::asio::awaitable<bool> record(RefreshTokenRecord token, std::string password_hash) override;
  boost::asio::awaitable<TokenState> state(std::string jti) override;
  boost::asio::awaitable<TokenState> revoke(std::string jti, std::string session,
                                            std::int64_t keep_until, Micros now) override;
  boost::asio::awaitable<bool> rotate(std::string old_jti, RefreshTokenRecord next,
                                      Micros now) override;
  boost::asio::awaitable<std::int64_t> prune_expired(std::int64_t now_seconds) override;

 private:
  PgDatabase& db_;
};

}  // namespace chat::store::postgres
