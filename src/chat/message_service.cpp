#include "chat/message_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "chat/chat_service.hpp"
#include "chat/permissions.hpp"
#include "chat/replay_views.hpp"
#include "chat/search_query.hpp"
#include "chat/until_decided.hpp"
#include "chat/wire.hpp"
#include "common/log_throttle.hpp"
#include "common/unicode.hpp"
#include "metrics/metrics.hpp"

namespace chat::chats {
namespace {

using namespace store;

// GET /api/events/ reads the log in steps: the first of kEventsFirstRead events, the next
// sized from the events seen so far, until the page holds `limit` events or about
// kEventsPageBytes of them. Events naming a large group's members (chat_updated of 3,000
// members: 148 KB) made a page of 1,000 take 147 MB of text and over a GiB to answer.
constexpr int kEventsFirstRead = 20;
constexpr std::size_t kEventsPageBytes = std::size_t{4} << 20;

Error no_message() {
  return Error::not_found("No Message matches the given query.");
}

Error deleted_original() {
  return Error::field("non_field_errors", "A deleted message cannot be forwarded.");
}

}  // namespace

Result<std::string> clean_message_text(const std::optional<std::string>& text, const char* field) {
  if (!text) return Error::field(field, "This field is required.");
  std::string trimmed(unicode::trim(*text));
  if (trimmed.empty()) return Error::field(field, "This field may not be blank.");
  if (unicode::length(trimmed) > kMaxMessageLength) {
    return Error::field(field, "Ensure this field has no more than 4096 characters.");
  }
  return trimmed;
}

boost::asio::awaitable<Result<MessageService::VisibleMessage>> MessageService::visible_message(
    std::int64_t me, std::int64_t message_id) {
  auto message = co_await store_.chats().find_message(message_id);
  if (!message) co_return no_message();
  auto m = co_await chats_.membership(me, message->chat_id);
  if (!m) co_return no_message();
  // A message hidden for the caller is gone for them.
  if (co_await store_.chats().is_hidden(me, message->chat_id, message->id)) co_return no_message();
  co_return VisibleMessage{std::move(*message), std::move(m->first), std::move(m->second)};
}

boost::asio::awaitable<Result<MessagePage>> MessageService::history(std::int64_t me,
                                                                    HistoryQuery q) {
  // Membership, page and watermarks in one read.
  auto page = co_await store_.chats().history(q.chat_id, me, q.before, q.after, q.limit);
  if (!page) co_return Error::not_found("No Chat matches the given query.");
  std::int64_t newest = 0;
  for (const auto& msg : page->messages) newest = std::max(newest, msg.id);
  Watermarks marks = std::move(page->marks);
  const std::int64_t had = page->viewer.last_delivered_message_id;
  // Reading is delivery: the reader's watermark moves, and the statuses with it. Like the
  // read watermark, it covers everything below it: the newest page (the chat as opened)
  // and an `after=` page (a catch-up from a message the client says it has) move it. An
  // older page (`before=` alone: scrolling back, or a jump to a found message) moves it
  // only when it reaches down to what the reader already had, so that unfetched messages
  // below it are not called delivered.
  const bool joins = !q.before || q.after || page->visible_below <= had;
  if (newest > had && joins) {
    const DeliveredUpTo delivered{{q.chat_id, newest}};
    if (co_await mark_delivered(me, delivered)) {
      marks = co_await store_.chats().watermarks(q.chat_id);
    }
  }
  MessagePage out{std::move(page->messages), std::move(marks), page->has_more};
  co_return out;
}

boost::asio::awaitable<bool> MessageService::mark_delivered(std::int64_t me,
                                                            const DeliveredUpTo& newest) {
  if (newest.empty()) co_return true;
  store::DeliveredNotes notes;
  for (const auto& [chat_id, message_id] : newest) notes[chat_id].emplace_back(me, message_id);
  try {
    EventsFor<DeliveredBatch> events = delivered_events;
    co_await store_.chats().mark_delivered_many(std::move(notes), std::move(events));
  } catch (const Unavailable& e) {
    static LogThrottle throttle(std::chrono::seconds(10));
    if (auto skipped = throttle.admit()) {
      spdlog::warn("delivered receipt of a read not written ({} more since): {}", *skipped,
                   e.what());
    }
    co_return false;
  }
  co_return true;
}

boost::asio::awaitable<Error> MessageService::deleted_meanwhile(std::int64_t message_id,
                                                                Error deleted) {
  auto still = co_await store_.chats().find_message(message_id);
  if (!still) co_return no_message();  // gone with its chat
  co_return deleted;
}

boost::asio::awaitable<Result<MessageView>> MessageService::repeated(store::MessageRecord earlier) {
  auto marks = co_await store_.chats().watermarks(earlier.chat_id);
  co_return MessageView{std::move(earlier), marks, false};
}

boost::asio::awaitable<Result<MessageView>> MessageService::store_message(std::int64_t me,
                                                                          NewMessage m) {
  auto events = [](const SentMessage& sent) {
    const auto& m = sent.message;
    std::vector<NewEvent> out{to_event(m.chat_id, m)};
    // API.md: a send moves its sender's watermark; when that reads others' messages, they
    // hear it as they hear any read.
    if (sent.read_moved)
      out.push_back(to_event(m.chat_id, read_event(m.chat_id, m.sender_id, m.id)));
    return out;
  };
  const std::optional<std::int64_t> original = m.copy_of;
  const std::int64_t chat_id = m.chat_id;
  const std::optional<std::string> client_id = m.client_id;
  auto sent = co_await store_.chats().send_message(std::move(m), std::move(events));
  if (!sent) co_return Error::not_found("No Chat matches the given query.");
  if (sent->original_gone) {  // a forward's original, deleted after forward() read it
    // A repeat of a forward that committed meanwhile answers it, as forward() would have.
    std::optional<store::MessageRecord> earlier;
    if (client_id) earlier = co_await store_.chats().find_sent(chat_id, me, *client_id);
    if (earlier) co_return co_await repeated(std::move(*earlier));
    if (!original) co_return deleted_original();  // only forwards have one to lose
    auto deleted = deleted_original();
    auto refused = co_await deleted_meanwhile(*original, std::move(deleted));
    co_return refused;
  }
  if (sent->created) metrics::metrics().messages_sent.inc();  // a repeated client_id is not
  MessageView view{std::move(sent->message), std::move(sent->marks), sent->created};
  co_return view;
}

namespace {

// A client_id is kept as sent (the client matches its pending copy by it), but whitespace
// alone is as blank as DRF's trimming would make it.
void check_client_id(const std::optional<std::string>& client_id, FieldErrors& errors) {
  if (!client_id) return;
  if (unicode::trim(*client_id).empty()) errors.add("client_id", "This field may not be blank.");
  if (unicode::length(*client_id) > kMaxClientIdLength) {
    errors.add("client_id", "Ensure this field has no more than 64 characters.");
  }
}

}  // namespace

boost::asio::awaitable<Result<MessageView>> MessageService::send(std::int64_t me, SendInput in) {
  FieldErrors errors = std::move(in.errors);
  if (!in.chat_id && !errors.has("chat")) errors.add("chat", "This field is required.");
  std::string text;
  if (!errors.has("text")) {
    auto cleaned = clean_message_text(in.text);
    if (cleaned) {
      text = std::move(*cleaned);
    } else {
      for (auto& [f, msgs] : cleaned.error().fields.items()) {
        for (auto& msg : msgs) errors.add(f, msg);
      }
    }
  }
  check_client_id(in.client_id, errors);
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  // The store checks membership in the send's own transaction (one trip to the store, not
  // three): a chat that is gone or not the sender's is the same 404 as everywhere.
  NewMessage message{*in.chat_id,  me,          std::move(text), std::move(in.client_id),
                     std::nullopt, now_micros()};
  co_return co_await store_message(me, std::move(message));
}

boost::asio::awaitable<Result<MessageView>> MessageService::edit(std::int64_t me,
                                                                 std::int64_t message_id,
                                                                 std::optional<std::string> text,
                                                                 FieldErrors errors, bool partial) {
  co_return co_await until_decided<MessageView>(
      [&] { return try_edit(me, message_id, text, errors, partial); });
}

boost::asio::awaitable<std::optional<Result<MessageView>>> MessageService::try_edit(
    std::int64_t me, std::int64_t message_id, const std::optional<std::string>& text,
    FieldErrors errors, bool partial) {
  auto found = co_await visible_message(me, message_id);
  if (!found) co_return std::move(found).error();
  auto& [message, chat, member] = *found;
  if (!allowed(Action::edit_message, {chat.type, Role::member, message.sender_id == me})) {
    co_return Error::forbidden();
  }
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  if (!text && partial) {  // nothing to change: the message as it is
    auto marks = co_await store_.chats().watermarks(chat.id);
    MessageView view{std::move(message), std::move(marks), false};
    co_return view;
  }
  auto cleaned = clean_message_text(text);
  if (!cleaned) co_return std::move(cleaned).error();
  // Checked before the write, and again by the write itself: a deletion may commit between
  // (and the next attempt refuses it here).
  if (message.is_deleted) {
    co_return Error::field("non_field_errors", "A deleted message cannot be edited.");
  }
  auto events = [](const MessageRecord& m) { return std::vector<NewEvent>{to_edit_event(m)}; };
  const Standing by{chat.id, me, std::nullopt};  // the sender, while a member
  auto edited = co_await store_.chats().edit_message(by, message_id, std::move(*cleaned),
                                                     now_micros(), std::move(events));
  if (!edited) co_return std::nullopt;
  auto marks = co_await store_.chats().watermarks(chat.id);
  MessageView view{std::move(*edited), std::move(marks), true};
  co_return view;
}

boost::asio::awaitable<Result<Removal>> MessageService::remove(std::int64_t me,
                                                               std::int64_t message_id,
                                                               bool for_me) {
  co_return co_await until_decided<Removal>([&] { return try_remove(me, message_id, for_me); });
}

boost::asio::awaitable<std::optional<Result<Removal>>> MessageService::try_remove(
    std::int64_t me, std::int64_t message_id, bool for_me) {
  auto found = co_await visible_message(me, message_id);
  if (!found) co_return std::move(found).error();
  auto& [message, chat, member] = *found;
  if (for_me) {
    auto events = [me](const MessageRecord& m) {
      return std::vector<NewEvent>{to_event(m.chat_id, delete_event(m, true), me)};
    };
    const bool hidden = co_await store_.chats().hide_message(me, message, std::move(events));
    // Not hidden now: hidden meanwhile, or the caller left (or the chat went). Decided
    // again, as a request made now would be (404 either way).
    if (!hidden) co_return std::nullopt;
    co_return Removal{message, true};
  }
  if (!allowed(Action::delete_for_everyone, {chat.type, member.role, message.sender_id == me})) {
    co_return Error::forbidden();
  }
  const Standing by{chat.id, me, member.role};
  if (co_await delete_for_everyone(by, message_id)) co_return Removal{message, true};
  // Deleted already (a no-op), or the caller's rights changed meanwhile: checked again.
  auto now = co_await store_.chats().find_message(message_id);
  if (now && now->is_deleted) co_return Removal{message, false};
  co_return std::nullopt;
}

boost::asio::awaitable<Result<Ok>> MessageService::remove_as_staff(std::int64_t message_id) {
  auto message = co_await store_.chats().find_message(message_id);
  if (!message) co_return no_message();
  co_await delete_for_everyone(std::nullopt, message_id);
  co_return Ok{};
}

boost::asio::awaitable<bool> MessageService::delete_for_everyone(std::optional<Standing> by,
                                                                 std::int64_t message_id) {
  auto events = [](const MessageRecord& m) { return std::vector<NewEvent>{to_delete_event(m)}; };
  auto unpinned = [](const PinRecord& p) {
    return std::vector<NewEvent>{to_pin_event(unpin_event(p), p)};
  };
  auto deleted = co_await store_.chats().delete_message(by, message_id, std::move(events),
                                                        std::move(unpinned));
  co_return deleted.has_value();
}

boost::asio::awaitable<Result<MessageView>> MessageService::forward(std::int64_t me,
                                                                    std::int64_t message_id,
                                                                    ForwardInput in) {
  auto found = co_await visible_message(me, message_id);
  if (!found) co_return std::move(found).error();
  FieldErrors errors = std::move(in.errors);
  if (!in.target_chat_id && !errors.has("target_chat_id"))
    errors.add("target_chat_id", "This field is required.");
  check_client_id(in.client_id, errors);
  if (!errors.empty()) co_return Error::validation(std::move(errors));
  const auto& message = found->message;
  const std::int64_t target_chat_id = *in.target_chat_id;
  // A repeated key answers the message first sent with it, even once the original is
  // deleted for everyone; the checks come in the same order with a key as without one.
  std::optional<store::MessageRecord> earlier;
  if (in.client_id) earlier = co_await store_.chats().find_sent(target_chat_id, me, *in.client_id);
  if (message.is_deleted && !earlier) co_return deleted_original();
  auto target = co_await chats_.membership(me, target_chat_id);
  if (!target) co_return std::move(target).error();
  if (earlier) co_return co_await repeated(std::move(*earlier));
  // A forward of a forward points at the first original. The store copies the text as it
  // is when the copy is written (an edit or a deletion meanwhile is seen).
  NewMessage copy{target_chat_id,
                  me,
                  message.text,
                  std::move(in.client_id),
                  message.forwarded_from.value_or(message.id),
                  now_micros(),
                  message.id};
  co_return co_await store_message(me, std::move(copy));
}

boost::asio::awaitable<Result<std::vector<SearchHit>>> MessageService::search(
    std::int64_t me, std::string query, std::optional<std::int64_t> chat_id, int limit) {
  auto terms = search_terms(query);
  if (auto problem = search_terms_problem(terms)) co_return Error::field("q", std::move(*problem));
  if (chat_id) {
    auto m = co_await chats_.membership(me, *chat_id);
    if (!m) co_return std::move(m).error();
  }
  auto found = co_await store_.chats().search(me, std::move(terms), chat_id, limit);
  std::map<std::int64_t, Watermarks> marks;
  std::vector<SearchHit> hits;
  for (auto& message : found) {
    auto it = marks.find(message.chat_id);
    if (it == marks.end()) {
      auto chat_marks = co_await store_.chats().watermarks(message.chat_id);
      it = marks.emplace(message.chat_id, std::move(chat_marks)).first;
    }
    hits.push_back({std::move(message), it->second});
  }
  co_return hits;
}

boost::asio::awaitable<Result<std::vector<PinView>>> MessageService::pins(std::int64_t me,
                                                                          std::int64_t chat_id) {
  auto m = co_await chats_.membership(me, chat_id);
  if (!m) co_return std::move(m).error();
  auto marks = co_await store_.chats().watermarks(chat_id);
  std::vector<PinView> out;
  auto pins = co_await store_.chats().pins(chat_id);
  for (auto& pin : pins) {
    // A message the caller hid for themselves is gone for them, pinned or not.
    if (co_await store_.chats().is_hidden(me, chat_id, pin.message_id)) continue;
    auto message = co_await store_.chats().find_message(pin.message_id);
    if (message) out.push_back({pin, std::move(*message), marks, true});
  }
  co_return out;
}

boost::asio::awaitable<Result<PinView>> MessageService::pin(std::int64_t me,
                                                            std::int64_t message_id) {
  co_return co_await until_decided<PinView>([&] { return try_pin(me, message_id); });
}

boost::asio::awaitable<std::optional<Result<PinView>>> MessageService::try_pin(
    std::int64_t me, std::int64_t message_id) {
  auto found = co_await visible_message(me, message_id);
  if (!found) co_return std::move(found).error();
  auto& [message, chat, member] = *found;
  if (!allowed(Action::pin, {chat.type, member.role})) co_return Error::forbidden();
  if (message.is_deleted)
    co_return Error::field("message_id", "A deleted message cannot be pinned.");
  auto events = [](const PinRecord& p) {
    return std::vector<NewEvent>{to_pin_event(pin_event(p), p)};
  };
  const Standing by{chat.id, me, member.role};
  auto pinned = co_await store_.chats().pin(by, message.id, now_micros(), std::move(events));
  // Deleted since it was read above (refused by the next attempt as if it had been deleted
  // before), or the caller's rights changed: checked again.
  if (!pinned) co_return std::nullopt;
  auto [pin, created] = std::move(*pinned);
  auto marks = co_await store_.chats().watermarks(chat.id);
  PinView view{pin, std::move(message), std::move(marks), created};
  co_return view;
}

boost::asio::awaitable<Result<Ok>> MessageService::unpin(std::int64_t me, std::int64_t pin_id) {
  co_return co_await until_decided<Ok>([&] { return try_unpin(me, pin_id); });
}

boost::asio::awaitable<std::optional<Result<Ok>>> MessageService::try_unpin(std::int64_t me,
                                                                            std::int64_t pin_id) {
  auto pin = co_await store_.chats().find_pin(pin_id);
  if (!pin) co_return Error::not_found();
  auto m = co_await chats_.membership(me, pin->chat_id);
  if (!m) co_return Error::not_found();
  // A message the caller hid is gone for them, and so is its pin.
  if (co_await store_.chats().is_hidden(me, pin->chat_id, pin->message_id)) {
    co_return Error::not_found();
  }
  if (!allowed(Action::pin, {m->first.type, m->second.role})) co_return Error::forbidden();
  auto events = [](const PinRecord& p) {
    return std::vector<NewEvent>{to_pin_event(unpin_event(p), p)};
  };
  const Standing by{pin->chat_id, me, m->second.role};
  // Unpinned meanwhile (the next attempt answers 404), or the caller's rights changed.
  if (!co_await store_.chats().unpin(by, pin_id, std::move(events))) co_return std::nullopt;
  co_return Ok{};
}

boost::asio::awaitable<Result<Ok>> MessageService::unpin_message(std::int64_t me,
                                                                 std::int64_t message_id) {
  auto found = co_await visible_message(me, message_id);
  if (!found) co_return std::move(found).error();
  auto pins = co_await store_.chats().pins(found->chat.id);
  for (const auto& p : pins) {
    if (p.message_id == message_id) co_return co_await unpin(me, p.id);
  }
  co_return Error::not_found("This message is not pinned.");
}

boost::asio::awaitable<Result<Replay>> MessageService::events(std::int64_t me, std::int64_t since,
                                                              int limit) {
  Replay replay;
  std::size_t bytes = 0;
  for (int want = std::min(limit, kEventsFirstRead);;) {
    auto part = co_await store_.chats().replay(me, since, want);
    if (part.resync_required) co_return part;
    for (auto& e : part.events) {
      bytes += e.payload.size();
      replay.events.push_back(std::move(e));
    }
    replay.last_seq = part.last_seq;
    replay.has_more = part.has_more;
    const auto held = replay.events.size();
    if (!part.has_more || held >= static_cast<std::size_t>(limit) || bytes >= kEventsPageBytes) {
      break;
    }
    since = part.last_seq;
    want = replay_read_size(bytes, held, kEventsPageBytes - bytes,
                            static_cast<std::size_t>(limit) - held);
  }
  replay.reader_views = co_await replay_views(store_.chats(), me, replay.events);
  // Fetching is delivery, as for a page of history: every chat of the page in one write.
  const DeliveredUpTo delivered = delivered_by_replay(replay.events, me);
  co_await mark_delivered(me, delivered);
  co_return replay;
}

}  // namespace chat::chats
