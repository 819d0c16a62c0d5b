#include "store/postgres/pg_rows.hpp"

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

// PostgreSQL's longest lexeme (MAXSTRLEN), in bytes.
constexpr std::size_t kMaxLexemeBytes = 2047;

constexpr std::string_view kSigma = "\xCF\x83";       // σ
constexpr std::string_view kFinalSigma = "\xCF\x82";  // ς

// One term of the query. The index lower-cases code point by code point, so a word written
// in capitals ends in σ ("ΟΔΟΣ" -> "οδοσ") and one written in small letters in ς ("οδος"):
// a term ending in either is looked up in both spellings (with every other ς as σ), as
// SQLite's unicode61 folds ς into σ on both sides.
std::string tsquery_term(std::string term) {
  for (auto at = term.find(kFinalSigma); at != std::string::npos; at = term.find(kFinalSigma, at)) {
    term.replace(at, kFinalSigma.size(), kSigma);
  }
  std::string out;
  if (!term.ends_with(kSigma)) {
    out = std::move(term);
    out += ":*";
    return out;
  }
  std::string final_form = term.substr(0, term.size() - kSigma.size());
  final_form += kFinalSigma;
  out += '(';
  out += term;
  out += ":* | ";
  out += final_form;
  out += ":*)";
  return out;
}

}  // namespace

std::optional<std::string> tsquery_prefixes(const std::vector<std::string>& terms) {
  std::string query;
  for (const auto& t : terms) {
    std::string folded = unicode::without_diacritics(t);
    if (folded.size() > kMaxLexemeBytes) return std::nullopt;
    if (!query.empty()) query += " & ";
    query += tsquery_term(std::move(folded));
  }
  return query;
}

}  // namespace chat::store::postgres
