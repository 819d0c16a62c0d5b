#include "http/handlers/user_json.hpp"

namespace chat::http {
namespace {

boost::json::value optional_time(const std::optional<Micros>& t) {
  if (!t) return nullptr;
  return boost::json::value(format_iso8601(*t));
}

}  // namespace

boost::json::object public_user_json(const store::UserRecord& u, bool online) {
  return {{"id", u.id},
          {"username", u.username},
          {"is_online", online},
          {"last_seen", optional_time(u.last_seen)}};
}

boost::json::object own_user_json(const store::UserRecord& u, bool online) {
  return {{"id", u.id},
          {"username", u.username},
          {"email", u.email},
          {"is_online", online},
          {"last_seen", optional_time(u.last_seen)},
          {"date_joined", format_iso8601(u.date_joined)}};
}

boost::json::object admin_user_json(const store::UserRecord& u, bool online) {
  return {{"id", u.id},
          {"username", u.username},
          {"email", u.email},
          {"is_active", u.is_active},
          {"is_staff", u.is_staff},
          {"is_superuser", u.is_superuser},
          {"is_online", online},
          {"last_seen", optional_time(u.last_seen)},
          {"date_joined", format_iso8601(u.date_joined)}};
}

}  // namespace chat::http
