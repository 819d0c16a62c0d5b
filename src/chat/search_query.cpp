#include "chat/search_query.hpp"

#include <algorithm>

#include "common/unicode.hpp"

namespace chat::chats {

std::vector<std::string> search_terms(std::string_view query) {
  std::vector<std::string> terms;
  auto cps = unicode::decode(query);
  if (!cps) return terms;
  std::vector<char32_t> word;
  auto flush = [&] {
    if (word.empty()) return;
    if (word.size() > kMaxTermLength) word.resize(kMaxTermLength);
    std::string term = unicode::to_lower(unicode::encode(word));
    if (std::find(terms.begin(), terms.end(), term) == terms.end() &&
        terms.size() < kMaxSearchTerms) {
      terms.push_back(std::move(term));
    }
    word.clear();
  };
  for (char32_t cp : *cps) {
    if (unicode::is_alnum(cp)) {
      word.push_back(cp);
    } else {
      flush();
    }
  }
  flush();
  return terms;
}

}  // namespace chat::chats
