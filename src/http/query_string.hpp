// Query strings and url-encoded form bodies read as Django reads them into a QueryDict,
// which is Python's urllib.parse.parse_qsl with blank values kept.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat::http {

using QueryPairs = std::vector<std::pair<std::string, std::string>>;

// Pieces split on '&' (empty ones skipped; ';' is no separator), each a name and a value
// at its first '=' (without one, the value is empty); '+' is a space, and %XX escapes are
// decoded as UTF-8 with each invalid part replaced by U+FFFD, as unquote(errors="replace")
// does. A '%' that starts no escape is kept as it is. Bytes that are not UTF-8 are read as
// Latin-1, as QueryDict reads a body that is not URL-encoded yet.
QueryPairs parse_query_pairs(std::string_view text);

// A request target with the characters Daphne takes though RFC 3986 does not (a query
// written by string concatenation, in a browser or with `requests`, may hold them raw):
// " # < > [ \ ] ^ ` { | } and a '%' that starts no escape are percent-encoded, from the
// path on, so that a strict URL parser reads the target and decoding gives them back.
// Spaces, control characters and bytes past ASCII are left for the parser to refuse, as
// Daphne refuses them.
std::string escape_lenient_target(std::string_view target);

}  // namespace chat::http
