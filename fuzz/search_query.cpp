// What a user types into search (chats::search_terms), as any bytes.
//
// Invariants: distinct terms, each valid UTF-8, not empty, made of letters and digits only
// and already lower-case; more than kMaxSearchTerms of them is a problem for the search;
// and the terms, searched for again, give themselves back.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/search_query.hpp"
#include "common/unicode.hpp"
#include "fuzz_check.hpp"

namespace {

using chat::fuzz::require;
namespace unicode = chat::unicode;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view query(reinterpret_cast<const char*>(data), size);
  const auto terms = chat::chats::search_terms(query);

  const auto problem = chat::chats::search_terms_problem(terms);
  require(problem.has_value() == (terms.empty() || terms.size() > chat::chats::kMaxSearchTerms),
          "a query's problem does not match its terms");
  std::string joined;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const std::string& t = terms[i];
    require(!t.empty(), "an empty term");
    const auto cps = unicode::decode(t);
    require(cps.has_value(), "a term is not valid UTF-8", t);
    for (char32_t cp : *cps) require(unicode::is_alnum(cp), "a term holds a non-word character", t);
    require(unicode::to_lower(t) == t, "a term is not lower-case", t);
    for (std::size_t j = 0; j < i; ++j) require(terms[j] != t, "a term is repeated", t);
    if (!joined.empty()) joined += ' ';
    joined += t;
  }
  require(chat::chats::search_terms(joined) == terms, "the terms do not give themselves back",
          joined);
  return 0;
}
