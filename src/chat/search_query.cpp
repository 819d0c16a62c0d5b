#include "chat/search_query.hpp"

#include <algorithm>
#include <set>

#include "common/unicode.hpp"

namespace chat::chats {

std::vector<std::string> search_terms(std::string_view query) {
  std::vector<std::string> words;
  for (auto& word : unicode::words(query))
    words.push_back(unicode::to_lower(unicode::encode(word)));
  // Each term is a prefix: one that begins another matches wherever that one does, and only
  // costs the search a lookup. In sorted order a term begins another only if it begins the
  // next one: found in one pass, however many words a long query holds.
  std::vector<std::string> sorted = words;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::set<std::string_view> covered;
  for (std::size_t i = 0; i + 1 < sorted.size(); ++i) {
    if (sorted[i + 1].starts_with(sorted[i])) covered.insert(sorted[i]);
  }
  // The rest, each once, in the order typed.
  std::vector<std::string> terms;
  std::set<std::string_view> kept;
  for (const auto& word : words) {  // the views name `words`' strings, which stay put
    if (covered.contains(word) || !kept.insert(word).second) continue;
    terms.push_back(word);
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
