// How events travel between nodes: one Redis message each, a short text header line and
// the event's JSON as the socket carries it, so a node forwards it without re-serialising.
//   L<seq> <chat_id> <user_id or 0> <created_at> <type>[ <hidden_from>,...]\n<payload>
//   E<origin> <exclude_user_id> <chat_id>,<chat_id>...\n<payload>
//   T<origin> <chat_id> <user_id> <1 or 0>\n<username>          (typing; no payload)
//   K<user_id> <close code>[ <login session>]\n<reason>
//   S<user_id> <close code> <socket serial>,<socket serial>...\n<reason>
//   N<seq> <chat_id>\n          (a new chat's event is in the log: its members' nodes read it)
// A node drops a kind it does not read, so during a rolling upgrade a new kind reaches only
// the nodes already upgraded. A new kind is therefore for what older nodes may miss (as
// `S`, or `T`, whose typing shows only on upgraded nodes until every node runs it); an
// event they must see keeps a layout they read.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "realtime/broker.hpp"

namespace chat::realtime {

struct WireEphemeral {
  std::string origin;  // "<node>:<counter>": the same event reaches a node on several channels
  Ephemeral event;
};

std::string encode_logged(const store::EventRecord& event);
std::string encode_ephemeral(const std::string& origin, const Ephemeral& event);
std::string encode_session_end(const SessionEnd& end);

// A chat_created event that names many members goes to each member's channel as this
// notice rather than as a copy (each copy holds every member: members² bytes in all).
struct ChatNotice {
  std::int64_t seq = 0;
  std::int64_t chat_id = 0;
};
std::string encode_chat_notice(const ChatNotice& notice);

// nullopt for anything malformed (it is dropped, never trusted).
using BrokerMessage = std::variant<store::EventRecord, WireEphemeral, SessionEnd, ChatNotice>;
std::optional<BrokerMessage> decode_broker_message(std::string_view message);

}  // namespace chat::realtime
