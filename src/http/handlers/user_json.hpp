// How a user is shown: in full to themselves, and without e-mail to everyone else.
#pragma once

#include <boost/json/object.hpp>

#include "store/user_store.hpp"

namespace chat::http {

boost::json::object own_user_json(const store::UserRecord& u, bool online);
boost::json::object public_user_json(const store::UserRecord& u, bool online);
// Everything but the password hash, for staff.
boost::json::object admin_user_json(const store::UserRecord& u, bool online);

}  // namespace chat::http
