// History reads: GET /api/messages/?chat=&before=&limit=50 over a chat of many messages,
// from several keep-alive connections in a closed loop, at random points of the history.
// The chat is filled through REST first; every page read is checked: 200, a full page, ids below
// `before`, newest first.
#include <boost/json.hpp>

#include <random>
#include <stdexcept>

#include "api.hpp"
#include "closed_loop.hpp"
#include "message_parse.hpp"
#include "scenario.hpp"

namespace chatbench {
namespace {

namespace json = boost::json;

struct Fill {
  long long total = 0;
  long long acked = 0;
  std::int64_t first_id = 0;
  std::int64_t last_id = 0;
};

}  // namespace

asio::awaitable<Report> run_history(const Options& o) {
  auto users = co_await register_users(o.target, o.prefix, 2, 2);
  auto socket = co_await connect(o.target, 0);
  HttpConnection http(std::move(socket), o.target.host_header());
  const std::vector<std::int64_t> members{users[0].id, users[1].id};
  const std::int64_t chat = co_await create_group(http, users[0], members, "history");

  // Fill the chat through REST from several connections (the 201 is the acknowledgement);
  // its members stay offline, so filling costs no fan-out.
  Fill fill;
  fill.total = o.history_messages;
  const std::string body = json::serialize(json::object{
      {"chat", chat}, {"text", std::string(static_cast<std::size_t>(o.text_bytes), 'h')}});
  auto send = [&](HttpConnection& conn, int) -> asio::awaitable<void> {
    auto r = co_await conn.request("POST", "/api/messages/", users[0].access, body);
    auto id = int_field(r.body, R"("id":)");
    if (r.status != 201 || !id) throw std::runtime_error("send: HTTP " + std::to_string(r.status));
    ++fill.acked;
    fill.first_id = fill.first_id == 0 ? *id : std::min(fill.first_id, *id);
    fill.last_id = std::max(fill.last_id, *id);
  };
  const auto fill_start = Clock::now();
  co_await for_each_parallel(o.target, static_cast<int>(fill.total), o.http_connections, send);
  const double fill_seconds = std::chrono::duration<double>(Clock::now() - fill_start).count();

  // Pages at random points of the history, each checked: a full page below `before`,
  // newest first.
  std::uniform_int_distribution<std::int64_t> before(fill.first_id + o.page_size, fill.last_id + 1);
  const std::string base = "/api/messages/?chat=" + std::to_string(chat) +
                           "&limit=" + std::to_string(o.page_size) + "&before=";
  const PathFor path = [&](std::mt19937_64& random) {
    return base + std::to_string(before(random));
  };
  const Check check = [&](const std::string& target, const HttpResponse& r) {
    if (r.status != 200) return false;
    const std::int64_t b = std::stoll(target.substr(base.size()));
    const auto doc = json::parse(r.body).as_object();
    const auto& results = doc.at("results").as_array();
    return results.size() == static_cast<std::size_t>(o.page_size) &&
           results.front().as_object().at("id").as_int64() < b &&
           results.front().as_object().at("id").as_int64() >
               results.back().as_object().at("id").as_int64();
  };
  auto measured = co_await measure_reads(o, users[1].access, path, check, "bad_pages");
  Report r;
  r["scenario"] = "history";
  r["messages_in_chat"] = fill.acked;
  r["fill_seconds"] = fill_seconds;
  r["fill_messages_per_second"] = static_cast<double>(fill.acked) / fill_seconds;
  r["page_size"] = o.page_size;
  r["connections"] = o.http_connections;
  r["runs"] = std::move(measured.runs);
  r["latency_all_runs"] = latency_json(measured.all);
  json::array buckets;
  for (const auto& [edge, count] : measured.all.buckets())
    buckets.push_back(json::array{edge, count});
  r["latency_buckets_ns"] = std::move(buckets);
  co_return r;
}

}  // namespace chatbench
