// Turns what a user typed into search terms: runs of letters and digits, lower-cased (the
// same notion of a word as the full-text index's tokenizer), at most kMaxTerms of them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chat::chats {

constexpr std::size_t kMaxSearchTerms = 8;
constexpr std::size_t kMaxTermLength = 64;  // characters

std::vector<std::string> search_terms(std::string_view query);

}  // namespace chat::chats
