#include "closed_loop.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <exception>

#include "proc_stats.hpp"

namespace chatbench {
namespace {

struct Tally {
  std::uint64_t requests = 0;
  std::uint64_t bad = 0;
  Histogram latency;
};

// Connection `n`'s requests until `until`.
asio::awaitable<void> read_until(const Options& o, const std::string& token, const PathFor& path,
                                 const Check& check, Tally& tally, std::uint64_t n,
                                 Clock::time_point until) {
  auto socket = co_await connect(o.target, n);
  HttpConnection http(std::move(socket), o.target.host_header());
  std::mt19937_64 random(n + 1);
  while (Clock::now() < until) {
    const std::string target = path(random);
    const auto start = Clock::now();
    auto r = co_await http.request("GET", target, token);
    tally.latency.record(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
    ++tally.requests;
    if (!check(target, r)) ++tally.bad;
  }
}

}  // namespace

asio::awaitable<MeasuredReads> measure_reads(const Options& o, const std::string& token,
                                             const PathFor& path, const Check& check,
                                             const std::string& bad_key) {
  auto executor = co_await asio::this_coro::executor;
  MeasuredReads out;
  for (int run = -1; run < o.runs; ++run) {  // run -1: the warm-up
    const double seconds = run < 0 ? o.warmup_seconds : o.run_seconds;
    if (seconds <= 0) continue;
    Tally tally;
    const auto before = sample_process(o.server_pid);
    const auto start = Clock::now();
    const auto until =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    int running = o.http_connections;
    std::exception_ptr failure;  // the first connection's that failed
    asio::steady_timer finished(executor, asio::steady_timer::time_point::max());
    for (int c = 0; c < o.http_connections; ++c) {
      // Connections 0 and 1 are the set-up's.
      const auto n = static_cast<std::uint64_t>(c) + 2;
      asio::co_spawn(executor, read_until(o, token, path, check, tally, n, until),
                     [&](const std::exception_ptr& e) {
                       if (e && !failure) failure = e;
                       if (--running == 0) finished.cancel();
                     });
    }
    boost::system::error_code ec;
    co_await finished.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    // A connection that failed (refused, cut off, an answer its check could not read) makes
    // the scenario fail: its requests would otherwise just stop, uncounted.
    if (failure) std::rethrow_exception(failure);
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    const double cpu = sample_process(o.server_pid).cpu_seconds - before.cpu_seconds;
    if (run < 0) continue;
    out.all.merge(tally.latency);
    const auto requests = static_cast<double>(tally.requests);
    out.runs.push_back(
        boost::json::object{{"requests", tally.requests},
                            {bad_key, tally.bad},
                            {"seconds", wall},
                            {"requests_per_second", requests / wall},
                            {"server_cores", cpu / wall},
                            {"requests_per_server_core_second", cpu > 0 ? requests / cpu : 0.0},
                            {"latency", latency_json(tally.latency)}});
  }
  co_return out;
}

}  // namespace chatbench
