#include "http/beast_response.hpp"

#include <utility>

namespace chat::http {

namespace bhttp = boost::beast::http;

bhttp::response<bhttp::string_body> to_beast(Response&& r, unsigned version, bool keep_alive,
                                             bool head, const std::string& request_id) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
  res.set(bhttp::field::server, "chatd");
  if (!r.content_type.empty()) res.set(bhttp::field::content_type, r.content_type);
  res.set("X-Request-Id", request_id);
  // Every answer is what its Content-Type says (JSON, text, a page): never sniffed as more.
  res.set("X-Content-Type-Options", "nosniff");
  for (auto& [name, value] : r.headers) res.set(name, value);
  res.keep_alive(keep_alive);
  const auto length = r.body.size();
  if (!head) res.body() = std::move(r.body);
  res.content_length(length);
  return res;
}

}  // namespace chat::http
