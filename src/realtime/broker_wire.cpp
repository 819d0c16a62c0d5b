#include "realtime/broker_wire.hpp"

#include <algorithm>
#include <charconv>

namespace chat::realtime {
namespace {

// Reads a decimal integer followed by `end`; advances `s` past both.
bool take_int(std::string_view& s, std::int64_t& out, char end) {
  const auto* first = s.data();
  const auto* last = s.data() + s.size();
  auto [p, ec] = std::from_chars(first, last, out);
  if (ec != std::errc() || p == last || *p != end) return false;
  s.remove_prefix(static_cast<std::size_t>(p - first) + 1);
  return true;
}

bool take_word(std::string_view& s, std::string_view& out, char end) {
  const auto pos = s.find(end);
  if (pos == std::string_view::npos) return false;
  out = s.substr(0, pos);
  s.remove_prefix(pos + 1);
  return true;
}

void append_ids(std::string& out, const std::vector<std::int64_t>& ids) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i]);
  }
}

// "1,2,3" into `ids`; false when anything in it is not an integer.
bool parse_ids(std::string_view list, std::vector<std::int64_t>& ids) {
  while (!list.empty()) {
    std::int64_t id = 0;
    const auto comma = list.find(',');
    const std::string_view part = list.substr(0, comma);
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), id);
    if (ec != std::errc() || p != part.data() + part.size()) return false;
    ids.push_back(id);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return true;
}

}  // namespace

std::string encode_logged(const store::EventRecord& e) {
  // Appended piece by piece: g++ 12 warns falsely (-Wrestrict) about "L" + std::string.
  std::string out = "L";
  out += std::to_string(e.seq);
  out += ' ';
  out += std::to_string(e.chat_id);
  out += ' ';
  out += std::to_string(e.user_id.value_or(0));
  out += ' ';
  out += std::to_string(e.created_at);
  out += ' ';
  out += e.type;
  if (!e.hidden_from.empty()) {
    out += ' ';
    append_ids(out, e.hidden_from);
  }
  out += '\n';
  out += e.payload;
  return out;
}

namespace {

std::string encode_typing(const std::string& origin, const TypingUpdate& t) {
  std::string out = "T";
  out += origin;
  out += ' ';
  out += std::to_string(t.chat_id);
  out += ' ';
  out += std::to_string(t.user_id);
  out += t.is_typing ? " 1\n" : " 0\n";
  out += t.username;
  return out;
}

std::optional<BrokerMessage> decode_typing(std::string_view s) {
  WireEphemeral w;
  TypingUpdate t;
  std::string_view origin;
  std::string_view flag;
  if (!take_word(s, origin, ' ') || origin.empty() || !take_int(s, t.chat_id, ' ') ||
      !take_int(s, t.user_id, ' ') || !take_word(s, flag, '\n') || (flag != "0" && flag != "1") ||
      s.empty() || t.chat_id <= 0 || t.user_id <= 0) {
    return std::nullopt;
  }
  t.is_typing = flag == "1";
  t.username = s;
  w.origin = origin;
  w.event.chat_ids = {t.chat_id};
  w.event.exclude_user_id = t.user_id;
  w.event.typing = std::move(t);
  return w;
}

}  // namespace

std::string encode_ephemeral(const std::string& origin, const Ephemeral& e) {
  if (e.typing) return encode_typing(origin, *e.typing);
  std::string out = "E";
  out += origin;
  out += ' ';
  out += std::to_string(e.exclude_user_id);
  out += ' ';
  append_ids(out, e.chat_ids);
  out += "\n";
  out += e.payload;
  return out;
}

std::string encode_session_end(const SessionEnd& end) {
  // Numbered sockets travel as a kind of their own: a node of a version before them drops
  // it, where a "K" without a session would close every socket of the user.
  std::string out = end.sockets.empty() ? "K" : "S";
  out += std::to_string(end.user_id);
  out += ' ';
  out += std::to_string(end.code);
  if (!end.sockets.empty()) {
    out += ' ';
    append_ids(out, end.sockets);
  } else if (!end.session.empty()) {
    out += ' ';
    out += end.session;
  }
  out += '\n';
  out += end.reason;
  return out;
}

namespace {

// "K<user> <code>\n<reason>", "K<user> <code> <session>\n<reason>", or (`numbered`)
// "S<user> <code> <socket>,<socket>...\n<reason>", without the kind.
std::optional<BrokerMessage> decode_session_end(std::string_view s, bool numbered) {
  SessionEnd end;
  std::string_view head;
  if (!take_int(s, end.user_id, ' ') || !take_word(s, head, '\n') || end.user_id <= 0) {
    return std::nullopt;
  }
  const auto space = head.find(' ');
  const std::string_view code_text = head.substr(0, space);
  std::int64_t code = 0;
  auto [p, ec] = std::from_chars(code_text.data(), code_text.data() + code_text.size(), code);
  if (ec != std::errc() || p != code_text.data() + code_text.size() || code < 1000 || code > 4999) {
    return std::nullopt;
  }
  const std::string_view rest =
      space == std::string_view::npos ? std::string_view() : head.substr(space + 1);
  if (numbered) {
    if (rest.empty() || !parse_ids(rest, end.sockets)) return std::nullopt;
    if (std::any_of(end.sockets.begin(), end.sockets.end(), [](auto id) { return id <= 0; })) {
      return std::nullopt;
    }
  } else if (space != std::string_view::npos) {
    if (rest.empty()) return std::nullopt;
    end.session = rest;
  }
  end.code = static_cast<int>(code);
  end.reason = s;
  return end;
}

}  // namespace

std::string encode_chat_notice(const ChatNotice& notice) {
  std::string out = "N";
  out += std::to_string(notice.seq);
  out += ' ';
  out += std::to_string(notice.chat_id);
  out += '\n';
  return out;
}

std::optional<BrokerMessage> decode_broker_message(std::string_view s) {
  if (s.empty()) return std::nullopt;
  const char kind = s.front();
  s.remove_prefix(1);
  if (kind == 'L') {
    store::EventRecord e;
    std::int64_t user = 0;
    std::string_view type;
    if (!take_int(s, e.seq, ' ') || !take_int(s, e.chat_id, ' ') || !take_int(s, user, ' ') ||
        !take_int(s, e.created_at, ' ') || !take_word(s, type, '\n') || type.empty() || s.empty()) {
      return std::nullopt;
    }
    if (user != 0) e.user_id = user;
    if (const auto space = type.find(' '); space != std::string_view::npos) {
      if (!parse_ids(type.substr(space + 1), e.hidden_from)) return std::nullopt;
      type = type.substr(0, space);
      if (type.empty()) return std::nullopt;
    }
    e.type = type;
    e.payload = s;
    return e;
  }
  if (kind == 'E') {
    WireEphemeral w;
    std::string_view origin;
    std::string_view chats;
    if (!take_word(s, origin, ' ') || !take_int(s, w.event.exclude_user_id, ' ') ||
        !take_word(s, chats, '\n') || s.empty()) {
      return std::nullopt;
    }
    w.origin = origin;
    if (!parse_ids(chats, w.event.chat_ids)) return std::nullopt;
    w.event.payload = s;
    return w;
  }
  if (kind == 'T') return decode_typing(s);
  if (kind == 'K') return decode_session_end(s, false);
  if (kind == 'S') return decode_session_end(s, true);
  if (kind == 'N') {
    ChatNotice n;
    if (!take_int(s, n.seq, ' ') || !take_int(s, n.chat_id, '\n') || !s.empty() || n.seq <= 0 ||
        n.chat_id <= 0) {
      return std::nullopt;
    }
    return n;
  }
  return std::nullopt;
}

}  // namespace chat::realtime
