// Messages, pins, search and the event log replay (API.md "Messages", "Pinned messages",
// and GET /api/events/). Every rule is checked here, for REST and WebSocket alike.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "store/store.hpp"

namespace chat::chats {

class ChatService;

constexpr std::size_t kMaxMessageLength = 4096;
constexpr std::size_t kMaxClientIdLength = 64;

struct MessageView {
  store::MessageRecord message;
  store::Watermarks watermarks;  // of the message's chat, for its status
  bool created = true;           // false: an idempotent retry returned the first message
};

struct MessagePage {
  std::vector<store::MessageRecord> messages;
  store::Watermarks watermarks;
  bool has_more = false;
};

struct SearchHit {
  store::MessageRecord message;
  store::Watermarks watermarks;
};

// A delete: the message as it was found (its ids name it in a delete event), and whether
// the delete changed anything (a message already deleted for everyone commits and
// broadcasts nothing).
struct Removal {
  store::MessageRecord message;
  bool changed = true;
};

struct PinView {
  store::PinRecord pin;
  store::MessageRecord message;
  store::Watermarks watermarks;
  bool created = true;
};

struct SendInput {
  std::optional<std::int64_t> chat_id;
  std::optional<std::string> text;
  std::optional<std::string> client_id;
  FieldErrors errors;
};

struct ForwardInput {
  std::optional<std::int64_t> target_chat_id;
  // As a send's: the same sender, target chat and client_id answer the first message.
  std::optional<std::string> client_id;
  FieldErrors errors;  // a REST body's, answered once the message is found visible
};

struct HistoryQuery {
  std::int64_t chat_id = 0;
  std::optional<std::int64_t> before;
  std::optional<std::int64_t> after;
  int limit = 50;
};

class MessageService {
 public:
  MessageService(store::Store& store, ChatService& chats) : store_(store), chats_(chats) {}

  // Reading a page counts as delivery of what it shows (the delivered watermark moves).
  boost::asio::awaitable<Result<MessagePage>> history(std::int64_t me, HistoryQuery q);
  boost::asio::awaitable<Result<MessageView>> send(std::int64_t me, SendInput in);
  // `partial` (a PATCH, as DRF's partial update): a missing text changes nothing.
  boost::asio::awaitable<Result<MessageView>> edit(std::int64_t me, std::int64_t message_id,
                                                   std::optional<std::string> text,
                                                   FieldErrors errors, bool partial = false);
  boost::asio::awaitable<Result<Removal>> remove(std::int64_t me, std::int64_t message_id,
                                                 bool for_me);
  // Deletes for everyone whoever sent it; the caller (admin::AdminService) checked that a
  // staff user asks. Members hear it as the sender's own delete.
  boost::asio::awaitable<Result<Ok>> remove_as_staff(std::int64_t message_id);
  // The input's errors answer once the message is found visible (DRF's get_object()).
  boost::asio::awaitable<Result<MessageView>> forward(std::int64_t me, std::int64_t message_id,
                                                      ForwardInput in);
  boost::asio::awaitable<Result<std::vector<SearchHit>>> search(std::int64_t me, std::string query,
                                                                std::optional<std::int64_t> chat_id,
                                                                int limit);

  boost::asio::awaitable<Result<std::vector<PinView>>> pins(std::int64_t me, std::int64_t chat_id);
  boost::asio::awaitable<Result<PinView>> pin(std::int64_t me, std::int64_t message_id);
  boost::asio::awaitable<Result<Ok>> unpin(std::int64_t me, std::int64_t pin_id);
  // Unpins by message (the socket event names the message, not the pin).
  boost::asio::awaitable<Result<Ok>> unpin_message(std::int64_t me, std::int64_t message_id);

  boost::asio::awaitable<Result<store::Replay>> events(std::int64_t me, std::int64_t since,
                                                       int limit);

 private:
  // The message, its chat and the caller's membership of it; 404 for outsiders and for
  // messages the caller has hidden.
  struct VisibleMessage {
    store::MessageRecord message;
    store::ChatRecord chat;
    store::MemberRecord member;  // the caller's
  };
  boost::asio::awaitable<Result<VisibleMessage>> visible_message(std::int64_t me,
                                                                 std::int64_t message_id);
  boost::asio::awaitable<Result<MessageView>> store_message(std::int64_t me, store::NewMessage m);
  // The answer to a repeated client_id: the message first sent with it.
  boost::asio::awaitable<Result<MessageView>> repeated(store::MessageRecord earlier);
  // The answer to a write its store refused because the message was deleted after the
  // service read it: `deleted`, or a 404 when the message went with its chat.
  boost::asio::awaitable<Error> deleted_meanwhile(std::int64_t message_id, Error deleted);
  // False when there was nothing to delete (already deleted, or gone), or `by` no longer
  // holds (store::Standing; nullopt for staff).
  boost::asio::awaitable<bool> delete_for_everyone(std::optional<store::Standing> by,
                                                   std::int64_t message_id);
  // One check-and-write each; nullopt when what it checked changed before the write
  // (until_decided).
  boost::asio::awaitable<std::optional<Result<MessageView>>> try_edit(
      std::int64_t me, std::int64_t message_id, const std::optional<std::string>& text,
      FieldErrors errors, bool partial);
  boost::asio::awaitable<std::optional<Result<Removal>>> try_remove(std::int64_t me,
                                                                    std::int64_t message_id,
                                                                    bool for_me);
  boost::asio::awaitable<std::optional<Result<PinView>>> try_pin(std::int64_t me,
                                                                 std::int64_t message_id);
  boost::asio::awaitable<std::optional<Result<Ok>>> try_unpin(std::int64_t me, std::int64_t pin_id);
  // (chat, the newest message id of it a fetch showed the caller)
  using DeliveredUpTo = std::vector<std::pair<std::int64_t, std::int64_t>>;
  // Moves the caller's delivered watermarks up (a fetch delivers) in one write, logging
  // `delivered` as a socket's delivery does. False when the database could not take the
  // write (a full disk, an outage): the read it comes with is answered all the same, and a
  // later fetch or socket delivers it.
  boost::asio::awaitable<bool> mark_delivered(std::int64_t me, const DeliveredUpTo& newest);

  store::Store& store_;
  ChatService& chats_;
};

// Trims and checks message text (1-4096 characters after trimming).
Result<std::string> clean_message_text(const std::optional<std::string>& text,
                                       const char* field = "text");

}  // namespace chat::chats
