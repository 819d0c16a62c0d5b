#include "realtime/hub.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <unordered_set>

#include "chat/wire.hpp"
#include "common/time.hpp"
#include "metrics/metrics.hpp"

namespace chat::realtime {
namespace {

Frame make_frame(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

Frame unread_frame(std::int64_t chat_id, std::int64_t count) {
  return make_frame("{\"type\":\"unread\",\"chat_id\":" + std::to_string(chat_id) +
                    ",\"unread_count\":" + std::to_string(count) + "}");
}

// `{...}` + seq, without re-serialising the payload.
std::string with_seq(const std::string& payload, std::int64_t seq) {
  std::string out = payload;
  out.pop_back();
  out += ",\"seq\":" + std::to_string(seq) + "}";
  return out;
}

template <class T>
void erase_from(std::vector<T>& v, const T& x) {
  if (auto it = std::find(v.begin(), v.end(), x); it != v.end()) v.erase(it);
}

// Flush jobs write at most this many sessions each, so several I/O threads share a large
// broadcast.
constexpr std::size_t kFlushChunk = 256;

// A socket that opened while more events went by than the hub remembers has every count
// read again, up to this many chats (a store read each).
constexpr std::size_t kRecountAllUpTo = 256;

std::int64_t field(const boost::json::object& o, const char* name) {
  const auto* v = o.if_contains(name);
  return (v != nullptr && v->is_int64()) ? v->get_int64() : 0;
}

}  // namespace

Hub::Hub(Broker& broker, Recount recount, Delivered delivered, Post post,
         std::size_t max_sockets_per_user)
    : broker_(broker),
      recount_(std::move(recount)),
      delivered_(std::move(delivered)),
      post_(std::move(post)),
      max_sockets_per_user_(max_sockets_per_user) {}

std::vector<SessionPtr> Hub::attach(const SessionPtr& session,
                                    const std::unordered_map<std::int64_t, UnreadState>& chats,
                                    std::optional<std::int64_t> from_seq,
                                    std::function<void()> ready, bool node_limit) {
  std::vector<SessionPtr> evicted;
  std::vector<std::int64_t> missed;  // chats to count again
  Interest interest;
  {
    std::lock_guard lock(mutex_);
    Entry& e = sessions_[session.get()];
    e.session = session;
    e.order = ++next_order_;
    // A chat socket keeps the state of its chat too: its chat_updated frames carry it.
    e.unread = chats;
    if (from_seq) missed = heard_since_locked(*from_seq, e.unread);
    // The chats are distinct (map keys) and the entry new: no search for each (a user in
    // 80,000 chats took 0.65 s under the hub's lock to open a socket when each looked).
    e.chats.reserve(chats.size());
    for (const auto& [chat_id, state] : chats) add_chat(e, chat_id, interest);
    auto& mine = by_user_[session->user_id()];
    if (mine.empty()) {
      interest.users_on.push_back(session->user_id());
    } else if (ready) {
      // Another socket of the user may still be catching up from the log (the broker reads
      // for the user's first socket here): this one goes live after that too, else what
      // that read hands on could come after newer events this one heard live.
      auto left = std::make_shared<std::atomic<int>>(2);
      auto both = [left, done = std::move(ready)] {
        if (left->fetch_sub(1) == 1) done();
      };
      broker_.when_caught_up(session->user_id(), both);
      ready = both;
    }
    mine.push_back(&e);
    while (node_limit && mine.size() > max_sockets_per_user_) {
      auto oldest = std::min_element(mine.begin(), mine.end(), [](const Entry* a, const Entry* b) {
        return a->order < b->order;
      });
      evicted.push_back((*oldest)->session);
      mine.erase(oldest);  // detach() later removes the rest
    }
    apply_locked(interest, from_seq, std::move(ready));
  }
  for (const std::int64_t chat_id : missed) recount_for(session, chat_id);
  return evicted;
}

std::vector<std::int64_t> Hub::heard_since_locked(
    std::int64_t seq, const std::unordered_map<std::int64_t, UnreadState>& chats) const {
  std::vector<std::int64_t> out;
  const std::size_t held = std::min(heard_count_, kHeard);
  std::int64_t oldest = INT64_MAX;
  for (std::size_t i = 0; i < held; ++i) {
    const Heard& h = heard_[i];
    oldest = std::min(oldest, h.seq);
    if (h.seq > seq && chats.contains(h.chat_id) &&
        std::find(out.begin(), out.end(), h.chat_id) == out.end()) {
      out.push_back(h.chat_id);
    }
  }
  // The ring turned over since `seq` (a thousand events while one socket opened): any chat
  // may have been among those it no longer holds. Counted again, as far as that is cheap.
  if (heard_count_ > kHeard && oldest > seq && chats.size() <= kRecountAllUpTo) {
    out.clear();
    for (const auto& [chat_id, state] : chats) out.push_back(chat_id);
  }
  return out;
}

void Hub::note_membership_locked(const store::EventRecord& event, const boost::json::object& o,
                                 std::int64_t subject) {
  auto note = [&](std::int64_t member) {
    membership_heard_[membership_count_++ % kMembershipHeard] = {event.seq, event.chat_id, member};
    membership_newest_seq_ = std::max(membership_newest_seq_, event.seq);
  };
  const std::string& type = event.type;
  if (type == "member_added" || type == "member_removed") {
    note(event.user_id.value_or(subject));
  } else if (type == "chat_deleted" || (type == "chat_created" && event.user_id)) {
    note(event.user_id.value_or(0));
  } else if (type == "chat_created") {
    // Told to all: each member, as far as the ring can spare; past that, anyone.
    constexpr std::size_t kEachMemberUpTo = 16;
    const auto* chat = o.if_contains("chat");
    const auto* members =
        chat != nullptr && chat->is_object() ? chat->as_object().if_contains("members") : nullptr;
    if (members == nullptr || !members->is_array() ||
        members->as_array().size() > kEachMemberUpTo) {
      note(0);
      return;
    }
    for (const auto& m : members->as_array()) {
      if (m.is_object()) note(field(m.as_object(), "id"));
    }
  }
}

std::unordered_set<std::int64_t> Hub::membership_changed_after_locked(std::int64_t user,
                                                                      std::int64_t seq) const {
  std::unordered_set<std::int64_t> out;
  const std::size_t held = std::min(membership_count_, kMembershipHeard);
  for (std::size_t i = 0; i < held; ++i) {
    const MembershipHeard& h = membership_heard_[i];
    if (h.seq > seq && (h.member == user || h.member == 0)) out.insert(h.chat_id);
  }
  return out;
}

std::optional<std::vector<std::int64_t>> Hub::membership_heard_since(std::int64_t user,
                                                                     std::int64_t seq) const {
  std::lock_guard lock(mutex_);
  // Nothing heard after `seq` (as when sockets reopen in a storm, with no chat changing):
  // no need to look through the ring.
  if (membership_newest_seq_ <= seq) return std::vector<std::int64_t>{};
  const std::size_t held = std::min(membership_count_, kMembershipHeard);
  std::int64_t oldest = INT64_MAX;
  for (std::size_t i = 0; i < held; ++i) oldest = std::min(oldest, membership_heard_[i].seq);
  if (membership_count_ > kMembershipHeard && oldest > seq) return std::nullopt;
  const auto changed = membership_changed_after_locked(user, seq);
  return std::vector<std::int64_t>(changed.begin(), changed.end());
}

void Hub::settle(const SessionPtr& session,
                 const std::unordered_map<std::int64_t, UnreadState>& chats, std::int64_t as_of,
                 const std::optional<std::vector<std::int64_t>>& which,
                 std::function<void()> ready) {
  Interest interest;
  std::vector<std::int64_t> joined;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(session.get());
    if (it == sessions_.end() || !session->is_user_socket()) {
      if (ready) ready();
      return;
    }
    Entry& e = it->second;
    std::unordered_set<std::int64_t> hearing(e.chats.begin(), e.chats.end());
    std::vector<std::int64_t> candidates;
    if (which) {
      candidates = *which;
    } else {
      candidates = e.chats;
      for (const auto& [chat_id, state] : chats) {
        if (!hearing.contains(chat_id)) candidates.push_back(chat_id);
      }
    }
    // Those changed again by events heard since the read (live, so already applied to the
    // socket) stay as those events left them.
    const auto newer = membership_changed_after_locked(session->user_id(), as_of);
    for (const std::int64_t chat_id : candidates) {
      if (newer.contains(chat_id)) continue;
      const auto now = chats.find(chat_id);
      if (now != chats.end() && !hearing.contains(chat_id)) {
        hearing.insert(chat_id);
        // A chat new to the node is heard from the read at `as_of` on, but a node that has
        // lost Redis reads it from before (the broker's hand_over): those older events are
        // not this socket's (some are from before the user joined).
        UnreadState state = now->second;
        if (auto c = by_chat_.find(chat_id); c == by_chat_.end() || c->second.empty()) {
          state.joined_at = std::max(state.joined_at, as_of + 1);
        }
        add_chat(e, chat_id, interest);
        e.unread.try_emplace(chat_id, state);
        joined.push_back(chat_id);
      } else if (now == chats.end() && hearing.erase(chat_id) > 0) {
        erase_from(e.chats, chat_id);
        e.unread.erase(chat_id);
        if (auto c = by_chat_.find(chat_id); c != by_chat_.end()) {
          erase_from(c->second, &e);
          if (c->second.empty()) {
            by_chat_.erase(c);
            interest.chats_off.push_back(chat_id);
          }
        }
      }
    }
    apply_locked(interest, as_of, std::move(ready));
  }
  // The client may show a count from before it left the chat, or none.
  for (const std::int64_t chat_id : joined) recount_for(session, chat_id, true);
}

void Hub::note_delivered(std::int64_t chat_id, std::int64_t message_id, std::int64_t user_id) {
  delivered_(chat_id, message_id, {user_id});
}

void Hub::announce_unread(const Session* session, const std::vector<std::int64_t>& chat_ids) {
  SessionPtr s;
  std::vector<std::int64_t> mine;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    s = it->second.session;
    for (const std::int64_t chat_id : chat_ids) {
      if (it->second.unread.contains(chat_id)) mine.push_back(chat_id);  // still a member
    }
  }
  for (const std::int64_t chat_id : mine) recount_for(s, chat_id, true);
}

std::vector<std::int64_t> Hub::not_counted(const Session* session,
                                           std::vector<std::int64_t> chat_ids) const {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return chat_ids;
  std::erase_if(chat_ids,
                [&](std::int64_t chat_id) { return it->second.unread.contains(chat_id); });
  return chat_ids;
}

void Hub::detach(const Session* s) {
  Interest interest;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(s);
    if (it == sessions_.end()) return;
    Entry* e = &it->second;
    // Only the chats it heard: leaving costs the same with 10 chats on the node or 100,000.
    for (const std::int64_t chat_id : e->chats) {
      auto c = by_chat_.find(chat_id);
      if (c == by_chat_.end()) continue;
      erase_from(c->second, e);
      if (c->second.empty()) {
        by_chat_.erase(c);
        interest.chats_off.push_back(chat_id);
      }
    }
    const std::int64_t user = e->session->user_id();
    if (auto u = by_user_.find(user); u != by_user_.end()) {
      erase_from(u->second, e);
      if (u->second.empty()) {
        by_user_.erase(u);
        interest.users_off.push_back(user);
      }
    }
    sessions_.erase(it);
    apply_locked(interest, std::nullopt, nullptr);
  }
}

void Hub::apply_locked(Interest& interest, std::optional<std::int64_t> from_seq,
                       std::function<void()> ready) {
  if (!interest.chats_off.empty() || !interest.users_off.empty()) {
    broker_.unsubscribe(std::move(interest.chats_off), std::move(interest.users_off));
  }
  if (!interest.chats_on.empty() || !interest.users_on.empty()) {
    broker_.subscribe(std::move(interest.chats_on), std::move(interest.users_on), from_seq,
                      std::move(ready));
  } else if (ready) {
    ready();
  }
}

std::size_t Hub::session_count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

void Hub::close_all(int code, const std::string& reason) {
  std::vector<SessionPtr> all;
  {
    std::lock_guard lock(mutex_);
    all.reserve(sessions_.size());
    for (auto& [key, e] : sessions_) all.push_back(e.session);
  }
  for (auto& s : all) s->close(code, reason);
}

// Called with the lock held.
void Hub::subscribe(Entry& e, std::int64_t chat_id, Interest& interest) {
  if (std::find(e.chats.begin(), e.chats.end(), chat_id) != e.chats.end()) return;
  add_chat(e, chat_id, interest);
}

// Called with the lock held; `e` does not have the chat yet.
void Hub::add_chat(Entry& e, std::int64_t chat_id, Interest& interest) {
  auto& list = by_chat_[chat_id];
  if (list.empty()) interest.chats_on.push_back(chat_id);
  list.push_back(&e);
  e.chats.push_back(chat_id);
}

// Called with the lock held.
std::vector<SessionPtr> Hub::unsubscribe(std::int64_t user_id, std::int64_t chat_id,
                                         Interest& interest) {
  std::vector<SessionPtr> chat_sockets;
  auto u = by_user_.find(user_id);
  if (u == by_user_.end()) return chat_sockets;
  auto c = by_chat_.find(chat_id);
  for (Entry* e : u->second) {
    if (c != by_chat_.end()) erase_from(c->second, e);
    erase_from(e->chats, chat_id);
    e->unread.erase(chat_id);
    if (e->session->chat_id() == chat_id) chat_sockets.push_back(e->session);
  }
  if (c != by_chat_.end() && c->second.empty()) {
    by_chat_.erase(c);
    interest.chats_off.push_back(chat_id);
  }
  return chat_sockets;
}

void Hub::queue_locked(Entry& e, const Frame& frame, std::int64_t seq, std::int64_t state) {
  if (e.session->queue(frame, seq, state)) dirty_.push_back(e.session);
}

void Hub::schedule_flush_locked() {
  if (flush_posted_ || dirty_.empty()) return;
  flush_posted_ = true;
  post_([this] { flush_dirty(); });
}

// On an I/O thread. Everything queued since the job was posted goes out in one write per
// session.
void Hub::flush_dirty() {
  std::vector<SessionPtr> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(dirty_);
    flush_posted_ = false;
  }
  while (batch.size() > kFlushChunk) {
    std::vector<SessionPtr> part(std::make_move_iterator(batch.end() - kFlushChunk),
                                 std::make_move_iterator(batch.end()));
    batch.resize(batch.size() - kFlushChunk);
    post_([part = std::move(part)] {
      for (const auto& s : part) s->flush();
    });
  }
  for (const auto& s : batch) s->flush();
}

void Hub::recount_for(const SessionPtr& s, std::int64_t chat_id, bool always, int attempts) {
  std::uint64_t asked_at = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(s.get());
    if (it == sessions_.end()) return;
    auto st = it->second.unread.find(chat_id);
    if (st == it->second.unread.end()) return;
    asked_at = st->second.version;
  }
  std::weak_ptr<Session> weak = s;
  // Whether the held count was sent for a failed read already: the store may fail this
  // recount again (it is read again later), and an `always` recount sends it once.
  auto sent_held = std::make_shared<bool>(false);
  recount_(chat_id, s->user_id(),
           [this, weak, chat_id, always, attempts, asked_at,
            sent_held](std::optional<store::UnreadCount> count) {
             auto session = weak.lock();
             if (!session) return false;
             bool ask_again = false;
             {
               // Queued under the lock, as live counts are: a newer count queued meanwhile
               // is never overtaken by this one.
               std::lock_guard lock(mutex_);
               auto it = sessions_.find(session.get());
               if (it == sessions_.end()) return false;
               auto st = it->second.unread.find(chat_id);
               if (st == it->second.unread.end()) return false;
               UnreadState& state = st->second;
               // The count the session now has, to a user socket (a chat socket keeps it
               // untold: see attach).
               const auto tell = [&] {
                 if (!session->is_user_socket()) return;
                 queue_locked(it->second, unread_frame(chat_id, state.unread), 0, chat_id);
                 schedule_flush_locked();
               };
               if (!count) {
                 // The store failed; it is asked again later (true). Meanwhile `always`
                 // sends the count the session has, once, and a count out of date goes on
                 // as it is, changes told again (the read may be given up on).
                 const bool held = !state.held_changes.empty();
                 state.stale_from = 0;
                 state.held_changes.clear();
                 if ((always && !*sent_held) || held) {
                   *sent_held = true;
                   tell();
                 }
                 return true;
               }
               if (state.stale_from != 0) {
                 // Out of date: only a count read after the event that made it so applies,
                 // with the changes heard since that were logged after its read.
                 if (count->seq < state.stale_from) return false;
                 std::int64_t after = count->count;
                 for (const auto& [seq, delta] : state.held_changes) {
                   if (seq > count->seq) after = std::max<std::int64_t>(0, after + delta);
                 }
                 const bool held = !state.held_changes.empty();
                 state.stale_from = 0;
                 state.held_changes.clear();
                 state.as_of = std::max(state.as_of, count->seq);
                 ++state.version;
                 if (!always && !held && state.unread == after) return false;
                 state.unread = after;
                 tell();
                 return false;
               }
               const bool moved = state.version != asked_at;
               // Answers to two questions can come back in either order: one read before
               // the count the session has was read is older news.
               const bool stale = count->seq < state.as_of;
               if (moved && !stale && attempts > 1) {
                 ask_again = true;  // changed live meanwhile: this count may miss that change
               } else {
                 if (!moved && !stale) {
                   state.as_of = std::max(state.as_of, count->seq);
                   if (!always && state.unread == count->count) return false;
                   state.unread = count->count;
                   ++state.version;
                 } else if (!always) {
                   return false;  // the count kept changing, or older news
                 }
                 tell();
               }
             }
             if (ask_again) recount_for(session, chat_id, always, attempts - 1);
             return false;
           });
}

void Hub::on_logged(const store::EventRecord& event) {
  auto& m = metrics::metrics();
  if (event.created_at > 0) m.event_log_lag.observe_micros(now_micros() - event.created_at);
  m.event_log_seq.raise_to(event.seq);
  // Parsed into a buffer on the stack (the heap only past it): this runs once per event,
  // and each member and string of a parsed tree was an allocation.
  unsigned char scratch[2048];
  boost::json::monotonic_resource arena(scratch, sizeof scratch);
  boost::json::value parsed = boost::json::parse(event.payload, &arena);
  const auto& o = parsed.as_object();
  const std::string& type = event.type;
  const bool is_message = type == "message";
  const std::int64_t chat_id = event.chat_id;
  const std::int64_t subject = field(o, "user_id");  // member events, read, delivered
  const std::int64_t sender = is_message ? field(o, "sender_id") : 0;
  const std::int64_t message_id = field(o, "message_id");

  // A chat_updated's copies differ in each recipient's read state (and, for a few, in
  // the last message and pins they see): the chat object with the pins and message most
  // members see is serialised once, and each copy's read state follows it in the same
  // frame (Session::queue_split).
  std::optional<chats::ChatUpdateView> update;
  std::vector<Frame> update_heads;  // by variant, made when a recipient needs it
  if (type == "chat_updated") {
    update = chats::chat_update_view(o);
    if (update) update_heads.resize(update->variants.size());
  }
  // Variants, each serialised once: chat sockets carry no seq; user sockets do; only the
  // sender's own sockets see the message's client_id.
  const Frame chat_frame = update ? nullptr : make_frame(event.payload);
  const Frame user_frame = update ? nullptr : make_frame(with_seq(event.payload, event.seq));
  Frame chat_frame_others = chat_frame;
  Frame user_frame_others = user_frame;
  if (is_message) {
    if (const auto* cid = o.if_contains("client_id"); cid != nullptr && !cid->is_null()) {
      boost::json::value other = parsed;
      other.as_object()["client_id"] = nullptr;
      const std::string plain = boost::json::serialize(other);
      chat_frame_others = make_frame(plain);
      user_frame_others = make_frame(with_seq(plain, event.seq));
    }
  }

  // The read state a chat_created's recipients start with, as its chat object tells it
  // (nothing read in a new chat; a member added has read up to the newest message). The
  // count is asked of the store again after it (`announce`).
  UnreadState joined;
  joined.joined_at = event.seq;
  if (type == "chat_created") {
    if (const auto* chat = o.if_contains("chat"); chat != nullptr && chat->is_object()) {
      joined.last_read = field(chat->as_object(), "last_read_message_id");
      joined.unread = field(chat->as_object(), "unread_count");
    }
  }
  std::vector<std::int64_t> delivered_to;  // users who got a message from someone else
  std::vector<SessionPtr> recount;
  std::vector<SessionPtr> announce;  // recounts sent even when unchanged
  std::vector<SessionPtr> to_close;  // after they have been told why
  // Members mostly share a count (everyone had read up to the same message): one frame
  // per distinct count, not one per member.
  std::vector<std::pair<std::int64_t, Frame>> unread_frames;
  auto unread_frame_for = [&](std::int64_t count) -> const Frame& {
    for (const auto& [c, f] : unread_frames) {
      if (c == count) return f;
    }
    return unread_frames.emplace_back(count, unread_frame(chat_id, count)).second;
  };
  // The user read the chat or hid a message: the count held is out of date until the store's
  // recount (asked below) applies, and an answer asked for before is older news.
  auto await_recount = [&](Entry& e) {
    auto st = e.unread.find(chat_id);
    // (Not when the count was read after the event.)
    if (st != e.unread.end() && event.seq > st->second.as_of) {
      st->second.stale_from = std::max(st->second.stale_from, event.seq);  // read after the newest
      ++st->second.version;
    }
    recount.push_back(e.session);
  };
  Interest interest;
  std::uint64_t queued = 0;
  {
    std::lock_guard lock(mutex_);
    heard_[heard_count_++ % kHeard] = {event.seq, chat_id};
    note_membership_locked(event, o, subject);
    auto deliver_to = [&](Entry& e) {
      ++queued;
      const Session& s = *e.session;
      if (update) {
        const auto st = e.unread.find(chat_id);
        const UnreadState state = st != e.unread.end() ? st->second : UnreadState{};
        const std::size_t k = update->variant_of(s.user_id());
        if (!update_heads[k]) update_heads[k] = make_frame(update->head + update->variants[k]);
        std::string tail = chats::ChatUpdateView::read_state(state.unread, state.last_read);
        if (s.is_user_socket()) {
          tail += R"(,"seq":)";
          tail += std::to_string(event.seq);
        }
        tail += '}';
        if (e.session->queue_split(update_heads[k], make_frame(std::move(tail)), event.seq)) {
          dirty_.push_back(e.session);
        }
        return;
      }
      const bool own = sender != 0 && s.user_id() == sender;
      const Frame& frame = s.is_user_socket() ? (own ? user_frame : user_frame_others)
                                              : (own ? chat_frame : chat_frame_others);
      queue_locked(e, frame, event.seq);
      if (is_message && !own) delivered_to.push_back(s.user_id());
    };
    if (event.user_id) {
      // Meant for one user: their user sockets (and a removed member's chat sockets).
      auto u = by_user_.find(*event.user_id);
      if (u != by_user_.end()) {
        for (Entry* e : u->second) {
          const Session& s = *e->session;
          if (s.is_user_socket()) {
            deliver_to(*e);
            if (type == "chat_created") {
              subscribe(*e, chat_id, interest);
              // A socket opened after the chat was made has its state already.
              e->unread.try_emplace(chat_id, joined);
              // The client may still show the count it had before it left the chat.
              announce.push_back(e->session);
            } else if (type == "delete") {  // hidden for them
              await_recount(*e);
            }
          } else if (s.chat_id() == chat_id && type == "delete") {
            await_recount(*e);  // hidden for them: the state it keeps (attach)
          } else if (s.chat_id() == chat_id &&
                     (type == "member_removed" || type == "chat_deleted")) {
            deliver_to(*e);
          }
        }
      }
      if (type == "member_removed" || type == "chat_deleted") {
        to_close = unsubscribe(*event.user_id, chat_id, interest);
      }
    } else {
      // A member who was removed stops hearing the chat before the news goes out: they get
      // their own copy of member_removed.
      if (type == "member_removed") unsubscribe(subject, chat_id, interest);
      // A new chat: its members' user sockets start hearing it.
      if (type == "chat_created") {
        for (const auto& m : o.at("chat").at("members").as_array()) {
          const std::int64_t member = field(m.as_object(), "id");
          if (auto u = by_user_.find(member); u != by_user_.end()) {
            for (Entry* e : u->second) {
              if (!e->session->is_user_socket()) continue;
              subscribe(*e, chat_id, interest);
              e->unread.try_emplace(chat_id, joined);
            }
          }
        }
      }
      if (type == "member_added") {
        if (auto u = by_user_.find(subject); u != by_user_.end()) {
          for (Entry* e : u->second) {
            if (e->session->is_user_socket()) subscribe(*e, chat_id, interest);
          }
        }
      }
      if (auto c = by_chat_.find(chat_id); c != by_chat_.end()) {
        delivered_to.reserve(c->second.size());
        const auto& hidden = event.hidden_from;  // about a message these members hid
        for (Entry* e : c->second) {
          if (!hidden.empty() &&
              std::find(hidden.begin(), hidden.end(), e->session->user_id()) != hidden.end()) {
            continue;
          }
          auto st = e->unread.find(chat_id);
          if (st != e->unread.end() && event.seq < st->second.joined_at) continue;
          deliver_to(*e);
          const Session& s = *e->session;
          if (st == e->unread.end()) continue;
          // A chat socket keeps its state (its chat_updated frames carry it) untold.
          const bool tell = s.is_user_socket();
          const std::int64_t me = s.user_id();
          if (is_message && event.seq <= st->second.as_of) {
            // Committed before the store read the count, heard after: counted already.
            if (sender == me) st->second.last_read = std::max(st->second.last_read, message_id);
          } else if (is_message && sender != me && message_id > st->second.last_read) {
            // A count is a state: under load, a socket gets only the newest one per write.
            ++st->second.version;
            ++st->second.unread;
            if (st->second.stale_from != 0) {
              st->second.held_changes.emplace_back(event.seq, 1);
            } else if (tell) {
              queue_locked(*e, unread_frame_for(st->second.unread), 0, chat_id);
            }
          } else if (is_message && sender == me) {
            // Sending reads the chat up to one's own message, the newest of the chat when
            // it committed: nothing is unread any more, on every device of the sender.
            st->second.last_read = std::max(st->second.last_read, message_id);
            if (st->second.unread != 0 || st->second.stale_from != 0) {
              st->second.unread = 0;
              st->second.stale_from = 0;
              st->second.held_changes.clear();
              ++st->second.version;
              if (tell) queue_locked(*e, unread_frame_for(0), 0, chat_id);
            }
          } else if (type == "read" && subject == me) {
            st->second.last_read = std::max(st->second.last_read, field(o, "last_read_message_id"));
            await_recount(*e);
          } else if (type == "delete" && message_id > st->second.last_read) {
            // Deleted for everyone, and held by the count: it leaves the count at once.
            // Waiting for the store's recount let a message heard meanwhile add one to the
            // old count, which the client showed for a moment; the recount confirms it.
            // (Own messages are never above `last_read`: sending reads them. A message
            // hidden by the user waits for the recount: it may have been deleted, and out
            // of the count, already.)
            if (event.seq > st->second.as_of && st->second.stale_from != 0) {
              st->second.held_changes.emplace_back(event.seq, -1);
              ++st->second.version;
            } else if (event.seq > st->second.as_of && st->second.unread > 0) {
              --st->second.unread;
              ++st->second.version;
              if (tell) queue_locked(*e, unread_frame_for(st->second.unread), 0, chat_id);
            }
            recount.push_back(e->session);
          }
        }
      }
    }
    schedule_flush_locked();
    // A chat new to this node is heard from this event on.
    apply_locked(interest, event.seq, nullptr);
  }
  m.deliveries.inc(queued);
  if (!delivered_to.empty()) delivered_(chat_id, message_id, delivered_to);
  for (const auto& s : recount) recount_for(s, chat_id);
  for (const auto& s : announce) recount_for(s, chat_id, true);
  for (const auto& s : to_close) s->close(1000, "no longer a member of this chat");
}

void Hub::on_ephemeral(const Ephemeral& event) {
  const Frame frame = make_frame(event.payload);
  std::lock_guard lock(mutex_);
  // A user's status goes to all their chats: members they share several with hear it once.
  std::unordered_set<const Entry*> seen;
  const bool several = event.chat_ids.size() > 1;
  std::uint64_t queued = 0;
  for (auto chat_id : event.chat_ids) {
    auto c = by_chat_.find(chat_id);
    if (c == by_chat_.end()) continue;
    for (Entry* e : c->second) {
      if (e->session->user_id() == event.exclude_user_id) continue;
      if (several && !seen.insert(e).second) continue;
      queue_locked(*e, frame, 0);
      ++queued;
    }
  }
  schedule_flush_locked();
  metrics::metrics().deliveries.inc(queued);
}

void Hub::on_session_end(const SessionEnd& end) {
  std::vector<SessionPtr> targets;
  {
    std::lock_guard lock(mutex_);
    if (auto u = by_user_.find(end.user_id); u != by_user_.end()) {
      for (const Entry* e : u->second) {
        const Session& s = *e->session;
        const bool named = end.sockets.empty()
                               ? end.session.empty() || s.login_session() == end.session
                               : std::find(end.sockets.begin(), end.sockets.end(),
                                           s.socket_serial()) != end.sockets.end();
        if (named) targets.push_back(e->session);
      }
    }
  }
  // Closing detaches them (the session calls detach() as it ends).
  for (const auto& s : targets) s->close(end.code, end.reason);
}

}  // namespace chat::realtime
