// Chats and their members (API.md "Chats"): create, list, rename, delete, membership and
// read state. Permissions come from chat/permissions; every change is logged as events in
// the same transaction (chat/wire shapes them).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "store/store.hpp"

namespace chat::chats {

struct CreateChatInput {
  std::optional<std::string> type;
  std::optional<std::string> name;
  std::optional<std::vector<std::int64_t>> member_ids;
  FieldErrors errors;  // from parsing
};

struct CreatedChatView {
  store::ChatSummary chat;
  bool created = false;
};

// What a read did: the caller's unread count after it, and their read watermark (whether
// it moved, and where it stands).
struct ReadOutcome {
  std::int64_t unread_count = 0;
  store::WatermarkChange watermark;
};

struct MemberInput {
  std::optional<std::int64_t> user_id;
  std::optional<std::string> role;
  FieldErrors errors;
  bool partial = false;  // a PATCH: a missing role changes nothing
};

class ChatService {
 public:
  explicit ChatService(store::Store& store) : store_(store) {}

  boost::asio::awaitable<Result<std::vector<store::ChatSummary>>> list(std::int64_t me);
  boost::asio::awaitable<Result<store::ChatSummary>> get(std::int64_t me, std::int64_t chat_id);
  boost::asio::awaitable<Result<CreatedChatView>> create(std::int64_t me, CreateChatInput in);
  // `partial` (a PATCH, as DRF's partial update): a missing name changes nothing.
  boost::asio::awaitable<Result<store::ChatSummary>> rename(std::int64_t me, std::int64_t chat_id,
                                                            std::optional<std::string> name,
                                                            FieldErrors errors,
                                                            bool partial = false);
  boost::asio::awaitable<Result<Ok>> remove(std::int64_t me, std::int64_t chat_id);

  boost::asio::awaitable<Result<store::MemberRecord>> add_member(std::int64_t me,
                                                                 std::int64_t chat_id,
                                                                 MemberInput in);
  boost::asio::awaitable<Result<store::MemberRecord>> change_role(std::int64_t me,
                                                                  std::int64_t chat_id,
                                                                  std::int64_t user_id,
                                                                  MemberInput in);
  boost::asio::awaitable<Result<Ok>> remove_member(std::int64_t me, std::int64_t chat_id,
                                                   std::int64_t user_id);

  // Moves the caller's read watermark (never down); returns it and their unread count.
  // `errors` (a REST body's) answer after the membership check, as DRF's get_object() comes
  // first.
  boost::asio::awaitable<Result<ReadOutcome>> mark_read(
      std::int64_t me, std::int64_t chat_id, std::optional<std::int64_t> last_read_message_id,
      FieldErrors errors = {});

  boost::asio::awaitable<bool> exists(std::int64_t chat_id);

  // The caller's membership, or 404 (a chat you are not in does not exist for you).
  boost::asio::awaitable<Result<std::pair<store::ChatRecord, store::MemberRecord>>> membership(
      std::int64_t me, std::int64_t chat_id);

 private:
  // One check-and-change each; nullopt when what it checked changed before the write
  // (until_decided).
  boost::asio::awaitable<std::optional<Result<store::ChatSummary>>> try_rename(
      std::int64_t me, std::int64_t chat_id, const std::optional<std::string>& name,
      FieldErrors errors, bool partial);
  boost::asio::awaitable<std::optional<Result<Ok>>> try_remove(std::int64_t me,
                                                               std::int64_t chat_id);
  boost::asio::awaitable<std::optional<Result<store::MemberRecord>>> try_add_member(
      std::int64_t me, std::int64_t chat_id, const MemberInput& in);
  boost::asio::awaitable<std::optional<Result<store::MemberRecord>>> try_change_role(
      std::int64_t me, std::int64_t chat_id, std::int64_t user_id, const MemberInput& in);
  boost::asio::awaitable<std::optional<Result<Ok>>> try_remove_member(std::int64_t me,
                                                                      std::int64_t chat_id,
                                                                      std::int64_t user_id);

  store::Store& store_;
};

}  // namespace chat::chats
