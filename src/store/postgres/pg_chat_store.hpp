#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "store/chat_store.hpp"

namespace chat::store::postgres {

class PgDatabase;
struct TxLog;
class PgConnection;

class PgChatStore final : public ChatStore {
 public:
  explicit PgChatStore(PgDatabase& db) : db_(db) {}

  void set_commit_listener(CommitListener listener) override { listener_ = std::move(listener); }
  void set_publish_barrier(PublishBarrier barrier) override { barrier_ = std::move(barrier); }
  void set_uncertain_commit_listener(std::function<void(std::int64_t)> listener) override {
    uncertain_ = std::move(listener);
  }

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
  // Nothing is left to finish: a deletion removes the chat's rows in its own transaction,
  // which takes only the chat's own row locks.
  boost::asio::awaitable<std::int64_t> finish_chat_deletions() override { co_return 0; }

 private:
  // A send waiting for its batch (the .cpp's group commit); named here for its helpers.
 public:
  struct PendingSend;

 private:
  // Sends are written in batches (group commit): a send that finds fewer than four
  // batches being written writes the queued sends in one transaction, with one round trip
  // for all their statements and one event-log lock, COMMIT and barrier. When a batch is
  // written, the first send still waiting is given the next batch to write.
  // Returns the sends it left for after its commit (a key shared with a forward's).
  using PendingSends = std::vector<std::shared_ptr<PendingSend>>;
  boost::asio::awaitable<PendingSends> write_sends(const PendingSends& batch);
  // write_sends; when the transaction fails for another reason than the database being
  // away, each send on its own, so that only a bad one fails; then the sends it left for
  // later the same way. A send that could not be written holds its error.
  boost::asio::awaitable<void> write_each_if_need_be(const PendingSends& batch);
  // write_each_if_need_be, then tells the batch's sends and hands the next batch on.
  boost::asio::awaitable<void> write_batch(PendingSends batch);

  using WriteBody = std::function<boost::asio::awaitable<void>(PgConnection&, TxLog&)>;
  // Runs a write transaction; after it commits, tells the listener what it logged and
  // waits for the barrier while still holding the event-log lock (see the .cpp).
  boost::asio::awaitable<void> write(WriteBody body);

  PgDatabase& db_;
  std::mutex sends_mutex_;
  std::vector<std::shared_ptr<PendingSend>> queued_sends_;
  int batches_in_flight_ = 0;
  CommitListener listener_;
  PublishBarrier barrier_;
  std::function<void(std::int64_t)> uncertain_;
};

}  // namespace chat::store::postgres
