#include "chat/search_query.hpp"

#include <algorithm>

#include "common/unicode.hpp"

namespace chat::chats {

std::vector<std::string> search_terms(std::string_view query) {
  std::vector<std::string> terms;
  for (auto& word : unicode::words(query)) {
    std::string term = unicode::to_lower(unicode::encode(word));
    // Each term is a prefix: one that begins another matches wherever that one does, and
    // only costs the search a lookup.
    const auto covers = [&term](const std::string& t) { return t.starts_with(term); };
    if (std::any_of(terms.begin(), terms.end(), covers)) continue;
    std::erase_if(terms, [&term](const std::string& t) { return term.starts_with(t); });
    terms.push_back(std::move(term));
  }
  return terms;
}

std::optional<std::string> search_terms_problem(const std::vector<std::string>& terms) {
  if (terms.empty()) return "Enter at least one word to search for.";
  if (terms.size() > kMaxSearchTerms) {
    return "Enter at most " + std::to_string(kMaxSearchTerms) + " words to search for.";
  }
  return std::nullopt;
}

}  // namespace chat::chats
