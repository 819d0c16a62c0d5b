#include "chat/search_query.hpp"

#include <algorithm>

#include "common/unicode.hpp"

namespace chat::chats {

std::vector<std::string> search_terms(std::string_view query) {
  std::vector<std::string> terms;
  for (auto& word : unicode::words(query)) {
    if (word.size() > kMaxTermLength) word.resize(kMaxTermLength);
    std::string term = unicode::to_lower(unicode::encode(word));
    if (std::find(terms.begin(), terms.end(), term) == terms.end() &&
        terms.size() < kMaxSearchTerms) {
      terms.push_back(std::move(term));
    }
  }
  return terms;
}

}  // namespace chat::chats
