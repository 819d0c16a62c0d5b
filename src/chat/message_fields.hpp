// How both doors read a message's own fields, a REST body's and a socket event's alike: the
// service judges the text (blank, too long) and the client id (whitespace alone), so the
// readers take them as given and the answer is the same whichever way they came.
#pragma once

#include "common/serializer_fields.hpp"

namespace chat::chats {

// `text` of a send or an edit: untrimmed, any text; missing is judged by the service (an
// edit by PATCH may leave it out).
inline constexpr CharFieldOptions kMessageTextField{
    .required = false, .allow_blank = true, .trim = false};
// `client_id` of a send: optional, null meaning none.
inline constexpr CharFieldOptions kClientIdField{
    .required = false, .trim = false, .allow_null = true};

}  // namespace chat::chats
