// Reads in a closed loop: several keep-alive connections, each sending its next GET when
// the last is answered, until the run's time is up; every answer timed and checked. The
// history and search scenarios measure this way.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>

#include <functional>
#include <random>
#include <string>

#include "histogram.hpp"
#include "net.hpp"
#include "scenario.hpp"

namespace chatbench {

// The path of a connection's next request, drawn from the connection's own generator.
using PathFor = std::function<std::string(std::mt19937_64& random)>;
// Whether the answer to the request of `target` is right.
using Check = std::function<bool(const std::string& target, const HttpResponse&)>;

struct MeasuredReads {
  boost::json::array runs;  // per measured run: requests, refused answers, rates, latency
  Histogram all;            // the latency of every measured run
};

// A warm-up of o.warmup_seconds, then o.runs runs of o.run_seconds, each on
// o.http_connections connections sending `token`'s GETs of `path`. Each run's JSON counts
// the answers `check` refuses under `bad_key`. Throws what a connection threw (it could not
// connect, the server cut it off, `check` could not read an answer).
asio::awaitable<MeasuredReads> measure_reads(const Options& o, const std::string& token,
                                             const PathFor& path, const Check& check,
                                             const std::string& bad_key);

}  // namespace chatbench
