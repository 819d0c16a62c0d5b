// chatbench: a load generator for servers that implement API.md (chatd, or the original
// Django Channels project). Each scenario registers its own users through the API, runs a
// warm-up and several measured runs, and prints one JSON report.
//   chatbench fanout --port 8000 --server-pid PID --members 1000 --rate 500000
#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <random>

#include "proc_stats.hpp"
#include "relay.hpp"
#include "scenario.hpp"

namespace chatbench {

boost::json::object latency_json(const Histogram& h) {
  auto ms = [](std::int64_t ns) { return static_cast<double>(ns) / 1e6; };
  return {{"count", h.count()},
          {"mean_ms", h.mean() / 1e6},
          {"p50_ms", ms(h.percentile(50))},
          {"p90_ms", ms(h.percentile(90))},
          {"p99_ms", ms(h.percentile(99))},
          {"p999_ms", ms(h.percentile(99.9))},
          {"max_ms", ms(h.max())}};
}

}  // namespace chatbench

int main(int argc, char** argv) {
  using namespace chatbench;
  CLI::App app{"chatbench: load generator for the chat API"};
  Options o;
  std::string scenario;
  std::string out;
  app.add_option("scenario", scenario,
                 "fanout | ingest | idle | history | search | reconnect | relay")
      ->required();
  app.add_option("--host", o.target.host, "server address (loopback)");
  app.add_option("--port", o.target.port, "server port");
  app.add_option("--sources", o.target.sources, "connect from 127.0.0.1..127.0.0.N");
  app.add_option("--server-pid", o.server_pid, "the server's pid, for CPU and memory");
  app.add_option("--prefix", o.prefix, "username prefix (default: random)");
  app.add_option("--setup-connections", o.setup_connections);
  app.add_option("--warmup", o.warmup_seconds, "seconds");
  app.add_option("--seconds", o.run_seconds, "seconds per measured run");
  app.add_option("--runs", o.runs);
  app.add_option("--members", o.members, "fanout: group size");
  app.add_option("--senders", o.senders);
  app.add_option("--text-bytes", o.text_bytes);
  app.add_option("--rate", o.rate, "fanout: deliveries/s, ingest: messages/s; 0 = closed loop");
  app.add_option("--window", o.window, "messages in flight per sender in a closed loop");
  app.add_flag("--relay", o.relay, "fanout: the server is `chatbench relay`, not a chat server");
  app.add_option("--sockets", o.sockets, "idle: sockets");
  app.add_option("--idle-seconds", o.idle_seconds);
  app.add_option("--storm-seconds", o.storm_seconds, "reconnect: everyone back within this");
  app.add_option("--history-messages", o.history_messages, "history: messages in the chat");
  app.add_option("--page-size", o.page_size);
  app.add_option("--search-messages", o.search_messages, "search: messages of others");
  app.add_option("--search-words", o.search_words, "search: words in each of them");
  app.add_option("--search-chats", o.search_chats, "search: groups the searcher is in")
      ->check(CLI::PositiveNumber);
  app.add_option("--http-connections", o.http_connections);
  app.add_option("--out", out, "write the report here as well");
  CLI11_PARSE(app, argc, argv);
  // `chatbench relay --port P`: serve the bare relay instead of measuring.
  if (scenario == "relay") return run_relay(o.target.host, o.target.port);
  if (o.prefix.empty()) {
    std::random_device rd;
    o.prefix = "b" + std::to_string(rd() % 1'000'000) + "_";
  }

  boost::asio::io_context io(1);
  auto run = [&]() -> boost::asio::awaitable<Report> {
    if (scenario == "fanout") co_return co_await run_fanout(o);
    if (scenario == "ingest") co_return co_await run_ingest(o);
    if (scenario == "idle") co_return co_await run_idle(o);
    if (scenario == "history") co_return co_await run_history(o);
    if (scenario == "reconnect") co_return co_await run_reconnect(o);
    if (scenario == "search") co_return co_await run_search(o);
    throw std::invalid_argument("unknown scenario: " + scenario);
  };
  auto result = boost::asio::co_spawn(io, run(), boost::asio::use_future);
  // Readers of sockets still open keep the loop alive after the report: stop it then.
  while (result.wait_for(std::chrono::seconds(0)) != std::future_status::ready) io.run_one();
  try {
    Report report = result.get();
    // The server's use over the whole scenario, set-up included (each scenario gets a
    // fresh server): CPU seconds and the most memory it ever had resident.
    if (const auto server = sample_process(o.server_pid); o.server_pid > 0 && server.ok) {
      report["server_cpu_seconds_total"] = server.cpu_seconds;
      long peak = server.peak_rss_kib;
      if (const auto* seen = report.if_contains("server_peak_rss_kib")) {
        peak = std::max(peak, static_cast<long>(seen->to_number<std::int64_t>()));
      }
      report["server_peak_rss_kib"] = peak;
    }
    const std::string text = boost::json::serialize(report);
    std::cout << text << "\n";
    if (!out.empty()) std::ofstream(out) << text << "\n";
    // The report is written either way; a failed delivery check is a failed run.
    if (const auto* check = report.if_contains("check");
        check != nullptr && !check->as_object().at("ok").as_bool()) {
      std::cerr << "chatbench " << scenario << ": the delivery check failed\n";
      return 3;
    }
  } catch (const std::exception& e) {
    std::cerr << "chatbench " << scenario << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
