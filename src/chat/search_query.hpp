// Turns what a user typed into search terms: runs of letters and digits, lower-cased (the
// same notion of a word as the full-text index's tokenizer), each once and whole, less
// those that begin another (every term matches as a prefix). A message must hold every
// term, so none may be dropped or cut: a query of more terms than a search may take is
// refused instead.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::chats {

// Terms per search at most: each is a prefix lookup in the index.
constexpr std::size_t kMaxSearchTerms = 32;

std::vector<std::string> search_terms(std::string_view query);

// What is wrong with these terms for a search, in the words of the `q` field's error, or
// nullopt when they can be searched for.
std::optional<std::string> search_terms_problem(const std::vector<std::string>& terms);

}  // namespace chat::chats
