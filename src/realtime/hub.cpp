#include "realtime/hub.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <iterator>

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

void erase_from(std::vector<const Session*>& v, const Session* s) {
  std::erase(v, s);
}

std::int64_t field(const boost::json::object& o, const char* name) {
  const auto* v = o.if_contains(name);
  return (v != nullptr && v->is_int64()) ? v->get_int64() : 0;
}

}  // namespace

Hub::Hub(Broker& broker, Recount recount, Delivered delivered, std::size_t max_sockets_per_user)
    : broker_(broker),
      recount_(std::move(recount)),
      delivered_(std::move(delivered)),
      max_sockets_per_user_(max_sockets_per_user) {}

std::vector<SessionPtr> Hub::attach(const SessionPtr& session,
                                    const std::unordered_map<std::int64_t, UnreadState>& chats,
                                    std::optional<std::int64_t> from_seq,
                                    std::function<void()> ready) {
  std::vector<SessionPtr> evicted;
  Interest interest;
  {
    std::lock_guard lock(mutex_);
    const Session* key = session.get();
    Entry& e = sessions_[key];
    e.session = session;
    e.order = ++next_order_;
    if (session->is_user_socket()) e.unread = chats;
    for (const auto& [chat_id, state] : chats) subscribe(key, chat_id, interest);
    auto& mine = by_user_[session->user_id()];
    if (mine.empty()) interest.users_on.push_back(session->user_id());
    mine.push_back(key);
    while (mine.size() > max_sockets_per_user_) {
      auto oldest =
          std::min_element(mine.begin(), mine.end(), [&](const Session* a, const Session* b) {
            return sessions_[a].order < sessions_[b].order;
          });
      evicted.push_back(sessions_[*oldest].session);
      mine.erase(oldest);  // detach() later removes the rest
    }
  }
  apply(interest, from_seq, std::move(ready));
  return evicted;
}

void Hub::detach(const Session* s) {
  Interest interest;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(s);
    if (it == sessions_.end()) return;
    for (auto& [chat_id, list] : by_chat_) {
      erase_from(list, s);
      if (list.empty()) interest.chats_off.push_back(chat_id);
    }
    std::erase_if(by_chat_, [](const auto& kv) { return kv.second.empty(); });
    const std::int64_t user = it->second.session->user_id();
    if (auto u = by_user_.find(user); u != by_user_.end()) {
      erase_from(u->second, s);
      if (u->second.empty()) {
        by_user_.erase(u);
        interest.users_off.push_back(user);
      }
    }
    sessions_.erase(it);
  }
  apply(interest, std::nullopt, nullptr);
}

void Hub::apply(Interest& interest, std::optional<std::int64_t> from_seq,
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
    for (auto& [key, e] : sessions_) all.push_back(e.session);
  }
  for (auto& s : all) s->close(code, reason);
}

// Called with the lock held.
void Hub::subscribe(const Session* s, std::int64_t chat_id, Interest& interest) {
  auto& list = by_chat_[chat_id];
  if (list.empty()) interest.chats_on.push_back(chat_id);
  if (std::find(list.begin(), list.end(), s) == list.end()) list.push_back(s);
}

// Called with the lock held.
std::vector<SessionPtr> Hub::unsubscribe(std::int64_t user_id, std::int64_t chat_id,
                                         Interest& interest) {
  std::vector<SessionPtr> chat_sockets;
  auto u = by_user_.find(user_id);
  if (u == by_user_.end()) return chat_sockets;
  auto c = by_chat_.find(chat_id);
  for (const Session* s : u->second) {
    if (c != by_chat_.end()) erase_from(c->second, s);
    auto& e = sessions_[s];
    e.unread.erase(chat_id);
    if (s->chat_id() == chat_id) chat_sockets.push_back(e.session);
  }
  if (c != by_chat_.end() && c->second.empty()) {
    by_chat_.erase(c);
    interest.chats_off.push_back(chat_id);
  }
  return chat_sockets;
}

void Hub::send_unread(const SessionPtr& s, std::int64_t chat_id, std::int64_t count) {
  s->deliver(unread_frame(chat_id, count));
}

void Hub::recount_for(const SessionPtr& s, std::int64_t chat_id) {
  std::weak_ptr<Session> weak = s;
  recount_(chat_id, s->user_id(), [this, weak, chat_id](std::int64_t count) {
    auto session = weak.lock();
    if (!session) return;
    {
      std::lock_guard lock(mutex_);
      auto it = sessions_.find(session.get());
      if (it == sessions_.end()) return;
      auto st = it->second.unread.find(chat_id);
      if (st == it->second.unread.end() || st->second.unread == count) return;
      st->second.unread = count;
    }
    send_unread(session, chat_id, count);
  });
}

void Hub::on_logged(const store::EventRecord& event) {
  boost::json::value parsed = boost::json::parse(event.payload);
  const auto& o = parsed.as_object();
  const std::string& type = event.type;
  const std::int64_t chat_id = event.chat_id;
  const std::int64_t subject = field(o, "user_id");  // member events, read, delivered
  const std::int64_t sender = type == "message" ? field(o, "sender_id") : 0;
  const std::int64_t message_id = field(o, "message_id");

  // Variants, each serialised once: chat sockets carry no seq; user sockets do; only the
  // sender's own sockets see the message's client_id.
  const Frame chat_frame = make_frame(event.payload);
  const Frame user_frame = make_frame(with_seq(event.payload, event.seq));
  Frame chat_frame_others = chat_frame;
  Frame user_frame_others = user_frame;
  if (type == "message") {
    if (const auto* cid = o.if_contains("client_id"); cid != nullptr && !cid->is_null()) {
      boost::json::value other = parsed;
      other.as_object()["client_id"] = nullptr;
      const std::string plain = boost::json::serialize(other);
      chat_frame_others = make_frame(plain);
      user_frame_others = make_frame(with_seq(plain, event.seq));
    }
  }

  std::vector<SessionPtr> targets;
  std::vector<std::pair<SessionPtr, std::int64_t>> unread_now;  // (session, count) to send
  std::vector<SessionPtr> recount;
  std::vector<SessionPtr> to_close;  // after they have been told why
  Interest interest;
  {
    std::lock_guard lock(mutex_);
    if (event.user_id) {
      // Meant for one user: their user sockets (and a removed member's chat sockets).
      auto u = by_user_.find(*event.user_id);
      if (u != by_user_.end()) {
        for (const Session* s : u->second) {
          auto& e = sessions_[s];
          if (s->is_user_socket()) {
            targets.push_back(e.session);
            if (type == "chat_created") {
              subscribe(s, chat_id, interest);
              e.unread[chat_id] = {};
              recount.push_back(e.session);
            } else if (type == "delete") {  // hidden for them
              recount.push_back(e.session);
            }
          } else if (s->chat_id() == chat_id &&
                     (type == "member_removed" || type == "chat_deleted")) {
            targets.push_back(e.session);
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
            for (const Session* s : u->second) {
              if (!s->is_user_socket()) continue;
              subscribe(s, chat_id, interest);
              sessions_[s].unread.try_emplace(chat_id);
            }
          }
        }
      }
      if (type == "member_added") {
        if (auto u = by_user_.find(subject); u != by_user_.end()) {
          for (const Session* s : u->second) {
            if (s->is_user_socket()) subscribe(s, chat_id, interest);
          }
        }
      }
      if (auto c = by_chat_.find(chat_id); c != by_chat_.end()) {
        for (const Session* s : c->second) {
          auto& e = sessions_[s];
          targets.push_back(e.session);
          if (!s->is_user_socket()) continue;
          auto st = e.unread.find(chat_id);
          if (st == e.unread.end()) continue;
          const std::int64_t me = s->user_id();
          if (type == "message" && sender != me && message_id > st->second.last_read) {
            unread_now.emplace_back(e.session, ++st->second.unread);
          } else if (type == "message" && sender == me) {
            st->second.last_read = std::max(st->second.last_read, message_id);
          } else if (type == "read" && subject == me) {
            st->second.last_read = std::max(st->second.last_read, field(o, "last_read_message_id"));
            recount.push_back(e.session);
          } else if (type == "delete" && message_id > st->second.last_read) {
            recount.push_back(e.session);
          }
        }
      }
    }
  }
  for (const auto& t : targets) {
    const bool own = sender != 0 && t->user_id() == sender;
    if (t->is_user_socket()) {
      t->deliver(own ? user_frame : user_frame_others, event.seq);
    } else {
      t->deliver(own ? chat_frame : chat_frame_others, event.seq);
    }
    if (type == "message" && !own) delivered_(t->user_id(), chat_id, message_id);
  }
  // Members mostly share a count (everyone had read up to the same message): one frame
  // per distinct count, not one per member.
  std::vector<std::pair<std::int64_t, Frame>> unread_frames;
  for (const auto& [s, count] : unread_now) {
    auto it = std::find_if(unread_frames.begin(), unread_frames.end(),
                           [count = count](const auto& f) { return f.first == count; });
    if (it == unread_frames.end()) {
      unread_frames.emplace_back(count, unread_frame(chat_id, count));
      it = std::prev(unread_frames.end());
    }
    s->deliver(it->second);
  }
  for (const auto& s : recount) recount_for(s, chat_id);
  for (const auto& s : to_close) s->close(1000, "no longer a member of this chat");
  // A chat new to this node is heard from this event on.
  apply(interest, event.seq, nullptr);
}

void Hub::on_ephemeral(const Ephemeral& event) {
  const Frame frame = make_frame(event.payload);
  std::vector<SessionPtr> targets;
  {
    std::lock_guard lock(mutex_);
    std::vector<const Session*> seen;
    for (auto chat_id : event.chat_ids) {
      auto c = by_chat_.find(chat_id);
      if (c == by_chat_.end()) continue;
      for (const Session* s : c->second) {
        if (s->user_id() == event.exclude_user_id) continue;
        if (std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
        seen.push_back(s);
        targets.push_back(sessions_[s].session);
      }
    }
  }
  for (const auto& s : targets) s->deliver(frame);
}

void Hub::on_session_end(const SessionEnd& end) {
  std::vector<SessionPtr> targets;
  {
    std::lock_guard lock(mutex_);
    if (auto u = by_user_.find(end.user_id); u != by_user_.end()) {
      for (const Session* s : u->second) targets.push_back(sessions_[s].session);
    }
  }
  // Closing detaches them (the session calls detach() as it ends).
  for (const auto& s : targets) s->close(end.code, end.reason);
}

}  // namespace chat::realtime
