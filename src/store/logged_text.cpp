#include "store/logged_text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace chat::store {

std::string with_logged_text(std::string_view payload, std::string_view text) {
  boost::system::error_code ec;
  auto value = boost::json::parse(payload, ec);
  if (ec || !value.is_object()) return std::string(payload);
  auto& object = value.as_object();
  auto* member = object.if_contains("text");
  if (member == nullptr) return std::string(payload);
  *member = text;
  return boost::json::serialize(value);
}

}  // namespace chat::store
