#include "chat/search_query.hpp"

#include <algorithm>

#include "common/unicode.hpp"

namespace chat::chats {

std::vector<std::string> search_terms(std::string_view query) {
  std::vector<std::string> terms;
  for (auto& word : unicode::words(query)) {
    std::string term = unicode::to_lower(unicode::encode(word));
    if (std::find(terms.begin(), terms.end(), term) == terms.end()) {
      terms.push_back(std::move(term));
    }
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
