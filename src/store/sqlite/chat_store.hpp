#pragma once

#include <chrono>

#include "store/chat_store.hpp"

namespace chat::store::sqlite {

class Database;

class SqliteChatStore final : public ChatStore {
 public:
  // `search_walk`: see search().
  SqliteChatStore(Database& db, std::chrono::microseconds search_walk)
      : db_(db), search_walk_(search_walk) {}

  void set_commit_listener(CommitListener listener) override { listener_ = std::move(listener); }

  boost::asio::awaitable<std::optional<ChatRecord>> find_chat(std::int64_t chat_id) override;
  boost::asio::awaitable<std::optional<std::int64_t>> find_private_chat(std::int64_t a,
                                                                        std::int64_t b) override;
  boost::asio::awaitable<std::optional<MemberRecord>> find_member(std::int64_t chat_id,
                                                                  std::int64_t user_id) override;
  boost::asio::awaitable<std::vector<MemberRecord>> members(std::int64_t chat_id) override;
  boost::asio::awaitable<std::vector<std::int64_t>> chat_ids_of(std::int64_t user_id) override;
  boost::asio::awaitable<std::vector<ChatSummary>> summaries(std::int64_t viewer_id) override;
  boost::asio::awaitable<ReadStates> read_states(std::int64_t user_id,
                                                 std::optional<std::int64_t> only_chat) override;
  boost::asio::awaitable<std::optional<ChatSummary>> summary(std::int64_t chat_id,
                                                             std::int64_t viewer_id) override;
  boost::asio::awaitable<std::vector<MemberView>> member_views(
      std::int64_t viewer_id, std::vector<std::int64_t> chat_ids) override;
  boost::asio::awaitable<UnreadCounts> unread_counts(std::int64_t viewer_id,
                                                     std::vector<std::int64_t> chat_ids) override;
  boost::asio::awaitable<Watermarks> watermarks(std::int64_t chat_id) override;
  boost::asio::awaitable<std::optional<HistoryPage>> history(std::int64_t chat_id,
                                                             std::int64_t viewer_id,
                                                             std::optional<std::int64_t> before,
                                                             std::optional<std::int64_t> after,
                                                             int limit) override;
  boost::asio::awaitable<std::optional<MessageRecord>> find_message(std::int64_t id) override;
  boost::asio::awaitable<std::optional<MessageRecord>> find_sent(std::int64_t chat_id,
                                                                 std::int64_t sender_id,
                                                                 std::string client_id) override;
  boost::asio::awaitable<bool> is_hidden(std::int64_t user_id, std::int64_t chat_id,
                                         std::int64_t message_id) override;
  boost::asio::awaitable<std::vector<MessageRecord>> search(std::int64_t viewer_id,
                                                            std::vector<std::string> terms,
                                                            std::optional<std::int64_t> chat_id,
                                                            int limit) override;
  boost::asio::awaitable<std::vector<PinRecord>> pins(std::int64_t chat_id) override;
  boost::asio::awaitable<std::optional<PinRecord>> find_pin(std::int64_t pin_id) override;
  boost::asio::awaitable<Replay> replay(std::int64_t user_id, std::int64_t since,
                                        int limit) override;
  boost::asio::awaitable<std::vector<EventRecord>> events_since(std::vector<std::int64_t> chat_ids,
                                                                std::vector<std::int64_t> user_ids,
                                                                std::int64_t after_seq,
                                                                int limit) override;
  boost::asio::awaitable<std::int64_t> newest_seq() override;

  boost::asio::awaitable<CreatedChat> create_chat(NewChat chat,
                                                  EventsFor<CreatedChat> events) override;
  boost::asio::awaitable<std::optional<ChatRecord>> rename_chat(
      Standing by, std::string name, EventsFor<RenamedChat> events) override;
  boost::asio::awaitable<bool> delete_chat(Standing by,
                                           EventsFor<std::vector<MemberRecord>> events) override;
  boost::asio::awaitable<std::optional<MemberChange>> add_member(
      Standing by, std::int64_t user_id, Role role, Micros now,
      EventsFor<MemberChange> events) override;
  boost::asio::awaitable<std::optional<MemberChange>> set_role(
      RoleChange change, EventsFor<MemberChange> events) override;
  boost::asio::awaitable<std::optional<Departure>> remove_member(
      std::int64_t chat_id, std::int64_t user_id, std::optional<RemovalBy> by,
      ChooseOwner choose_owner, EventsFor<Departure> events) override;
  boost::asio::awaitable<std::optional<SentMessage>> send_message(
      NewMessage message, EventsFor<SentMessage> events) override;
  boost::asio::awaitable<std::optional<MessageRecord>> edit_message(
      Standing by, std::int64_t id, std::string text, Micros now,
      EventsFor<MessageRecord> events) override;
  boost::asio::awaitable<std::optional<MessageRecord>> delete_message(
      std::optional<Standing> by, std::int64_t id, EventsFor<MessageRecord> events,
      EventsFor<PinRecord> unpinned) override;
  boost::asio::awaitable<bool> hide_message(std::int64_t user_id, const MessageRecord& message,
                                            EventsFor<MessageRecord> events) override;
  boost::asio::awaitable<WatermarkChange> mark_read(std::int64_t chat_id, std::int64_t user_id,
                                                    std::int64_t value,
                                                    EventsFor<WatermarkChange> events) override;
  boost::asio::awaitable<std::vector<DeliveredBatch>> mark_delivered_many(
      DeliveredNotes notes, EventsFor<DeliveredBatch> events) override;
  boost::asio::awaitable<std::optional<std::pair<PinRecord, bool>>> pin(
      Standing by, std::int64_t message_id, Micros now, EventsFor<PinRecord> events) override;
  boost::asio::awaitable<bool> unpin(Standing by, std::int64_t pin_id,
                                     EventsFor<PinRecord> events) override;
  boost::asio::awaitable<std::int64_t> prune_events(Micros before) override;
  boost::asio::awaitable<std::int64_t> finish_chat_deletions() override;

 private:
  // Removes a retired chat's rows, a slice per write (chat_store.cpp: kRetireChat).
  // false when a write failed part-way (logged).
  boost::asio::awaitable<bool> purge(std::int64_t chat_id);

  // Runs a write on the writer thread and then tells the listener what it logged.
  template <class F>
  auto write(F f);

  Database& db_;
  std::chrono::microseconds search_walk_;
  CommitListener listener_;
};

}  // namespace chat::store::sqlite
