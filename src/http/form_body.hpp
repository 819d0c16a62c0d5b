// Form bodies read as Django reads them into a QueryDict: application/x-www-form-urlencoded
// and multipart/form-data. The result is a JSON object that serializer fields read like a
// JSON body: each key holds its last value (QueryDict[]), and every value of each key is
// kept beside it for the fields that take lists (QueryDict.getlist; FormValues in
// common/serializer_fields.hpp).
#pragma once

#include <boost/json/object.hpp>

#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/serializer_fields.hpp"

namespace chat::http {

Result<boost::json::object> parse_urlencoded_form(std::string_view body);

// `content_type` is the whole header (its boundary parameter is needed). A part with a
// file name is a file: it reads as an object, which no field of this API accepts.
Result<boost::json::object> parse_multipart_form(std::string_view body,
                                                 std::string_view content_type);

}  // namespace chat::http
