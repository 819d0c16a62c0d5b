#include "store/postgres/pg_rows.hpp"

#include <algorithm>

#include "common/unicode.hpp"

namespace chat::store::postgres {

UserRecord read_user(const PgResult& r, int row) {
  UserRecord u;
  u.id = r.int64(row, 0);
  u.username = r.text(row, 1);
  u.email = r.text(row, 2);
  u.password_hash = r.text(row, 3);
  u.is_active = r.boolean(row, 4);
  u.is_staff = r.boolean(row, 5);
  u.is_superuser = r.boolean(row, 6);
  u.date_joined = r.int64(row, 7);
  u.last_seen = optional_int64(r, row, 8);
  return u;
}

ChatRecord read_chat(const PgResult& r, int i) {
  ChatRecord c;
  c.id = r.int64(i, 0);
  c.type = r.text(i, 1) == "private" ? ChatType::private_chat : ChatType::group;
  c.name = r.text(i, 2);
  c.created_at = r.int64(i, 3);
  c.last_message_id = r.int64(i, 4);
  c.last_activity_at = r.int64(i, 5);
  return c;
}

MemberRecord read_member(const PgResult& r, int i) {
  MemberRecord m;
  m.user_id = r.int64(i, 0);
  m.username = r.text(i, 1);
  m.role = parse_role(r.text(i, 2)).value_or(Role::member);
  m.joined_at = r.int64(i, 3);
  m.last_read_message_id = r.int64(i, 4);
  m.last_delivered_message_id = r.int64(i, 5);
  return m;
}

MessageRecord read_message(const PgResult& r, int i) {
  MessageRecord m;
  m.id = r.int64(i, 0);
  m.chat_id = r.int64(i, 1);
  m.sender_id = r.int64(i, 2);
  m.sender_username = r.text(i, 3);
  m.text = r.text(i, 4);
  m.created_at = r.int64(i, 5);
  m.edited_at = optional_int64(r, i, 6);
  m.is_deleted = r.boolean(i, 7);
  m.forwarded_from = optional_int64(r, i, 8);
  if (!r.is_null(i, 9)) m.client_id = std::string(r.text(i, 9));
  return m;
}

namespace {

// PostgreSQL indexes no word of this many bytes or more (MAXSTRLEN is 2047, and a word
// of exactly that length is dropped too).
constexpr std::size_t kMaxLexemeBytes = 2047;

constexpr std::string_view kSigma = "\xCF\x83";       // σ
constexpr std::string_view kFinalSigma = "\xCF\x82";  // ς

// One term of the query. The index lower-cases code point by code point, so a word written
// in capitals ends in σ ("ΟΔΟΣ" -> "οδοσ") and one written in small letters in ς ("οδος"):
// a term ending in either is looked up in both spellings (with every other ς as σ), and a
// term with a ς inside in its own spelling too, as SQLite's unicode61 folds ς into σ on
// both sides.
std::string tsquery_term(const std::string& term) {
  std::string sigmas = term;
  for (auto at = sigmas.find(kFinalSigma); at != std::string::npos;
       at = sigmas.find(kFinalSigma, at)) {
    sigmas.replace(at, kFinalSigma.size(), kSigma);
  }
  std::vector<std::string> spellings{sigmas};
  if (sigmas.ends_with(kSigma)) {
    std::string final_form = sigmas.substr(0, sigmas.size() - kSigma.size());
    final_form += kFinalSigma;
    spellings.push_back(std::move(final_form));
  }
  if (std::find(spellings.begin(), spellings.end(), term) == spellings.end()) {
    spellings.push_back(term);
  }
  std::string out;
  if (spellings.size() > 1) out += '(';
  for (std::size_t i = 0; i < spellings.size(); ++i) {
    if (i > 0) out += " | ";
    out += spellings[i];
    out += ":*";
  }
  if (spellings.size() > 1) out += ')';
  return out;
}

}  // namespace

std::optional<std::string> tsquery_prefixes(const std::vector<std::string>& terms) {
  std::string query;
  for (const auto& t : terms) {
    const std::string folded = unicode::without_diacritics(t);
    if (folded.size() >= kMaxLexemeBytes) return std::nullopt;
    if (!query.empty()) query += " & ";
    query += tsquery_term(folded);
  }
  return query;
}

}  // namespace chat::store::postgres
