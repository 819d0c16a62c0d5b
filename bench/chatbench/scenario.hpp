// What every scenario gets and gives: the options of one run, and a JSON report.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <sys/types.h>

#include <string>

#include "histogram.hpp"
#include "net.hpp"

namespace chatbench {

struct Options {
  Target target;
  pid_t server_pid = 0;  // chatd, for CPU seconds and RSS from /proc (0: not measured)
  std::string prefix;    // of the usernames this run registers
  int setup_connections = 16;
  double warmup_seconds = 2;
  double run_seconds = 5;
  int runs = 3;
  // fanout / ingest
  int members = 1000;
  int senders = 10;
  int text_bytes = 200;
  double rate = 0;     // fanout: deliveries/s; ingest: messages/s; 0 = as fast as it goes
  int window = 4;      // messages in flight per sender when not paced
  bool relay = false;  // fanout against chatbench's bare relay: no users, no chat
  // idle / reconnect
  int sockets = 1000;
  double idle_seconds = 20;
  double storm_seconds = 5;
  // history
  long long history_messages = 1'000'000;
  int page_size = 50;
  int http_connections = 32;
  // search
  int search_messages = 10'000;
  int search_words = 200;  // per message of the fill
  int search_chats = 1;    // the searcher's groups (its message in the first)
};

using Report = boost::json::object;

boost::json::object latency_json(const Histogram& h);

asio::awaitable<Report> run_fanout(const Options& o);
asio::awaitable<Report> run_ingest(const Options& o);
asio::awaitable<Report> run_idle(const Options& o);
asio::awaitable<Report> run_history(const Options& o);
asio::awaitable<Report> run_reconnect(const Options& o);
asio::awaitable<Report> run_search(const Options& o);

}  // namespace chatbench
