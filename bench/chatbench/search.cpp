// Search: GET /api/messages/search/?q= by a user with one matching message, over a
// database where other people's messages hold many words starting with the same letters.
// A search index that answers a short prefix by visiting every word that starts with it
// pays for everyone's messages on each request; one that keeps such prefixes pays for
// the caller's. Each query (prefixes of one, two and three characters, and a whole word)
// is measured in a closed loop of its own, and every answer is checked: exactly the
// caller's message. With --search-chats N the caller is in N groups of its own, its message
// in the first: a search then looks through all of them.
#include <boost/json.hpp>

#include <array>
#include <random>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "api.hpp"
#include "closed_loop.hpp"
#include "message_parse.hpp"
#include "scenario.hpp"

namespace chatbench {
namespace {

namespace json = boost::json;

// The caller's one message; every query below is a prefix of its first word.
constexpr const char* kMine = "abcdefg mine";
constexpr std::array<std::string_view, 4> kQueries{"a", "ab", "abc", "abcdefg"};

// Message `i` of the fill: `words` words of an "a" and six random letters.
std::string fill_text(int i, int words) {
  std::mt19937 random(static_cast<std::uint32_t>(i));
  std::uniform_int_distribution<int> letter('a', 'z');
  std::string text;
  text.reserve(static_cast<std::size_t>(words) * 8);
  for (int w = 0; w < words; ++w) {
    if (w > 0) text += ' ';
    text += 'a';
    for (int k = 0; k < 6; ++k) text += static_cast<char>(letter(random));
  }
  return text;
}

}  // namespace

asio::awaitable<Report> run_search(const Options& o) {
  // 0 writes the fill into a chat with 2; 1 searches, alone in a group of its own.
  auto users = co_await register_users(o.target, o.prefix, 3, 3);
  auto socket = co_await connect(o.target, 0);
  HttpConnection http(std::move(socket), o.target.host_header());
  // (g++ 12: no braced lists in a co_await's arguments)
  const std::vector<std::int64_t> writers{users[0].id, users[2].id};
  const std::vector<std::int64_t> searcher{users[1].id};
  const std::int64_t fill_chat = co_await create_group(http, users[0], writers, "search-fill");
  const std::int64_t own_chat = co_await create_group(http, users[1], searcher, "mine");
  auto more_chats = [&](HttpConnection& conn, int) -> asio::awaitable<void> {
    co_await create_group(conn, users[1], searcher, "more");
  };
  co_await for_each_parallel(o.target, o.search_chats - 1, o.setup_connections, more_chats);
  const std::string own_message =
      json::serialize(json::object{{"chat", own_chat}, {"text", kMine}});
  const auto mine = co_await http.request("POST", "/api/messages/", users[1].access, own_message);
  const auto mine_id = int_field(mine.body, R"("id":)");
  if (mine.status != 201 || !mine_id)
    throw std::runtime_error("send: HTTP " + std::to_string(mine.status));

  long long acked = 0;
  auto send = [&](HttpConnection& conn, int i) -> asio::awaitable<void> {
    const std::string body =
        json::serialize(json::object{{"chat", fill_chat}, {"text", fill_text(i, o.search_words)}});
    auto r = co_await conn.request("POST", "/api/messages/", users[0].access, body);
    if (r.status != 201) throw std::runtime_error("fill: HTTP " + std::to_string(r.status));
    ++acked;
  };
  const auto fill_start = Clock::now();
  co_await for_each_parallel(o.target, o.search_messages, o.setup_connections, send);
  const double fill_seconds = std::chrono::duration<double>(Clock::now() - fill_start).count();

  const std::int64_t expected = *mine_id;
  const Check check = [expected](const std::string&, const HttpResponse& r) {
    if (r.status != 200) return false;
    const auto doc = json::parse(r.body);
    const auto& results = doc.as_object().at("results").as_array();
    return results.size() == 1 && results.front().as_object().at("id").as_int64() == expected;
  };
  json::array queries;
  for (const std::string_view query : kQueries) {
    const std::string q(query);
    std::string target = "/api/messages/search/?q=" + q;
    const PathFor path = [&target](std::mt19937_64&) { return target; };
    auto measured = co_await measure_reads(o, users[1].access, path, check, "bad_answers");
    const auto all = latency_json(measured.all);
    queries.push_back(
        json::object{{"q", q}, {"runs", std::move(measured.runs)}, {"latency_all_runs", all}});
  }
  Report r;
  r["scenario"] = "search";
  r["fill_messages"] = acked;
  r["words_per_message"] = o.search_words;
  r["searcher_chats"] = o.search_chats;
  r["fill_seconds"] = fill_seconds;
  r["connections"] = o.http_connections;
  r["queries"] = std::move(queries);
  co_return r;
}

}  // namespace chatbench
