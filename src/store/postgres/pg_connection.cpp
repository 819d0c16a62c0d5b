#include "store/postgres/pg_connection.hpp"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <chrono>

#include "metrics/metrics.hpp"
#include "store/store.hpp"

namespace chat::store::postgres {
namespace {

namespace asio = boost::asio;

// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running
// ..."): one log line each, their lines joined with "; ".
std::string one_line(std::string msg) {
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  std::string out;
  out.reserve(msg.size());
  for (std::size_t i = 0; i < msg.size(); ++i) {
    if (msg[i] != '\n') {
      out += msg[i];
      continue;
    }
    out += "; ";
    while (i + 1 < msg.size() && (msg[i + 1] == '\t' || msg[i + 1] == ' ')) ++i;
  }
  return out;
}

// The error a failed result reports.
PgError error_of(const pg_result* r) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* function = PQresultErrorField(r, PG_DIAG_SOURCE_FUNCTION);
  return {"postgres: " + one_line(PQresultErrorMessage(r)), state != nullptr ? state : "",
          function != nullptr ? function : ""};
}

std::string connection_error(pg_conn* conn) {
  return "postgres: " + one_line(conn != nullptr ? PQerrorMessage(conn) : "out of memory");
}

// libpq ignores connect_timeout in nonblocking mode: the whole connect is bounded here.
constexpr std::chrono::seconds kConnectTimeout{5};

// Waits until `descriptor` is ready for `type` or `timeout` has passed; false on timeout. A
// PostgreSQL that hangs (a frozen host, stalled storage) closes nothing and keeps TCP
// alive, so without this a request would wait for as long as it hangs.
asio::awaitable<bool> ready_within(asio::posix::stream_descriptor& descriptor,
                                   asio::posix::stream_descriptor::wait_type type,
                                   std::chrono::steady_clock::duration timeout) {
  using namespace asio::experimental::awaitable_operators;
  boost::system::error_code ec;  // an error on the socket is libpq's to find
  auto ready = descriptor.async_wait(type, asio::redirect_error(asio::use_awaitable, ec));
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto late = timer.async_wait(asio::use_awaitable);
  auto either = std::move(ready) || std::move(late);
  const auto first = co_await std::move(either);
  co_return first.index() == 0;
}

// Server notices (and a restart's farewell) go to the log, not to stderr.
void log_notice(void* /*arg*/, const char* message) {
  std::string text = message;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  spdlog::debug("postgres: {}", text);
}

// A connection refused, timed out or failed counts as an error of kind "connect".
const metrics::DbCallMetrics& connect_metrics() {
  static const auto m = metrics::DbCallMetrics::of("postgres", "connect");
  return m;
}

}  // namespace

// The libpq socket, watched by Asio. libpq owns the descriptor: it is released, never
// closed, here.
struct PgConnection::Socket {
  Socket(const asio::any_io_executor& ex, int fd) : descriptor(ex, fd) {}
  ~Socket() { descriptor.release(); }
  asio::posix::stream_descriptor descriptor;
};

PgResult& PgResult::operator=(PgResult&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

PgResult::~PgResult() {
  if (r_ != nullptr) PQclear(r_);
}

int PgResult::rows() const {
  return r_ == nullptr ? 0 : PQntuples(r_);
}
bool PgResult::is_null(int row, int col) const {
  return PQgetisnull(r_, row, col) != 0;
}
std::string_view PgResult::text(int row, int col) const {
  return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
}
std::int64_t PgResult::int64(int row, int col) const {
  auto s = text(row, col);
  std::int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}
bool PgResult::boolean(int row, int col) const {
  return text(row, col) == "t";
}
std::int64_t PgResult::affected() const {
  const char* n = PQcmdTuples(r_);
  std::int64_t v = 0;
  std::from_chars(n, n + std::char_traits<char>::length(n), v);
  return v;
}

PgConnection::PgConnection(pg_conn* conn, std::unique_ptr<Socket> socket)
    : conn_(conn), socket_(std::move(socket)) {}

PgConnection::~PgConnection() {
  if (watchdog_) watchdog_->remove(&clock_);  // before the descriptor closes
  socket_.reset();                            // release the descriptor before libpq closes it
  PQfinish(conn_);
}

bool PgConnection::healthy() const {
  // A connection left in pipeline mode by a failure is not reused either.
  return !clock_.given_up.load() && PQstatus(conn_) == CONNECTION_OK &&
         PQpipelineStatus(conn_) == PQ_PIPELINE_OFF;
}

bool PgConnection::still_alive() {
  if (!healthy()) return false;
  // An idle connection has nothing to say: what a restart leaves is its farewell message,
  // which libpq takes as a notice, and then the end of the stream, which only the next
  // read reports.
  for (int i = 0; i < 2; ++i) {
    if (PQconsumeInput(conn_) == 0) return false;
  }
  return healthy();
}

asio::awaitable<std::unique_ptr<PgConnection>> PgConnection::connect(asio::any_io_executor ex,
                                                                     std::string conninfo) {
  metrics::DbCallTimer timed(connect_metrics());
  pg_conn* conn = PQconnectStart(conninfo.c_str());
  if (conn == nullptr || PQstatus(conn) == CONNECTION_BAD) {
    std::string msg = connection_error(conn);
    PQfinish(conn);
    throw Unavailable(msg);
  }
  std::unique_ptr<Socket> socket;
  int fd = -1;
  const auto deadline = std::chrono::steady_clock::now() + kConnectTimeout;
  // PQconnectPoll says which way to wait; the descriptor can change between attempts
  // (one per address), so it is re-read each round.
  for (PostgresPollingStatusType state = PGRES_POLLING_WRITING;;) {
    if (PQsocket(conn) != fd) {
      socket.reset();
      fd = PQsocket(conn);
      if (fd >= 0) socket = std::make_unique<Socket>(ex, fd);
    }
    if (state == PGRES_POLLING_OK) break;
    if (state == PGRES_POLLING_FAILED || !socket) {
      std::string msg = connection_error(conn);
      socket.reset();
      PQfinish(conn);
      throw Unavailable(msg);
    }
    const auto type = state == PGRES_POLLING_READING ? asio::posix::stream_descriptor::wait_read
                                                     : asio::posix::stream_descriptor::wait_write;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero() ||
        !co_await ready_within(socket->descriptor, type, left)) {
      socket.reset();
      PQfinish(conn);
      throw Unavailable("postgres: no connection within " +
                        std::to_string(kConnectTimeout.count()) + " s");
    }
    state = PQconnectPoll(conn);
  }
  PQsetnonblocking(conn, 1);
  PQsetNoticeProcessor(conn, log_notice, nullptr);
  timed.ok();
  co_return std::unique_ptr<PgConnection>(new PgConnection(conn, std::move(socket)));
}

asio::awaitable<void> PgConnection::wait(asio::posix::stream_descriptor::wait_type type) {
  if (watchdog_) clock_.waiting_since.store(PgWatchdog::now_ns(), std::memory_order_relaxed);
  boost::system::error_code ec;  // an error on the socket is libpq's to find
  co_await socket_->descriptor.async_wait(type, asio::redirect_error(asio::use_awaitable, ec));
  if (!watchdog_) co_return;
  clock_.waiting_since.store(0, std::memory_order_relaxed);
  if (clock_.given_up.load()) {
    // The watchdog shut the socket: whatever the server does with the statement now, this
    // connection is done.
    throw Unavailable("postgres: no answer within " + std::to_string(watchdog_->timeout().count()) +
                      " s");
  }
}

void PgConnection::watch(std::shared_ptr<PgWatchdog> watchdog) {
  if (!watchdog) return;
  clock_.fd = PQsocket(conn_);
  watchdog_ = std::move(watchdog);
  watchdog_->add(&clock_);
}

asio::awaitable<void> PgConnection::flush() {
  for (;;) {
    const int r = PQflush(conn_);
    if (r == 0) co_return;
    if (r < 0) throw Unavailable(connection_error(conn_));
    co_await wait(asio::posix::stream_descriptor::wait_write);
    if (PQconsumeInput(conn_) == 0) throw Unavailable(connection_error(conn_));
  }
}

// Waits for the results of the query sent; keeps the last one, or throws the first error.
asio::awaitable<PgResult> PgConnection::collect() {
  PgResult last;
  std::optional<PgError> failure;
  for (;;) {
    while (PQisBusy(conn_) != 0) {
      co_await wait(asio::posix::stream_descriptor::wait_read);
      if (PQconsumeInput(conn_) == 0) throw Unavailable(connection_error(conn_));
    }
    pg_result* r = PQgetResult(conn_);
    if (r == nullptr) break;
    const auto status = PQresultStatus(r);
    if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR ||
        status == PGRES_BAD_RESPONSE) {
      if (!failure) failure.emplace(error_of(r));
      PQclear(r);
    } else {
      last = PgResult(r);
    }
  }
  if (!healthy()) throw Unavailable(connection_error(conn_));
  if (failure) fail(*failure);
  co_return last;
}

namespace {

struct Encoded {
  std::vector<const char*> values;
  explicit Encoded(const PgParams& params) {
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  }
};

const metrics::DbCallMetrics& query_metrics() {
  static const auto m = metrics::DbCallMetrics::of("postgres", "query");
  return m;
}

const metrics::DbCallMetrics& pipeline_metrics() {
  static const auto m = metrics::DbCallMetrics::of("postgres", "pipeline");
  return m;
}

}  // namespace

asio::awaitable<PgResult> PgConnection::query(const char* sql, PgParams params) {
  metrics::DbCallTimer timed(query_metrics());
  Encoded enc(params);
  if (PQsendQueryParams(conn_, sql, static_cast<int>(enc.values.size()), nullptr, enc.values.data(),
                        nullptr, nullptr, 0) == 0) {
    throw Unavailable(connection_error(conn_));
  }
  co_await flush();
  auto result = co_await collect();
  timed.ok();
  co_return result;
}

void PgConnection::share_plan_epoch(std::shared_ptr<std::atomic<std::uint64_t>> epoch) {
  plan_epoch_ = std::move(epoch);
  if (plan_epoch_) statements_epoch_ = plan_epoch_->load(std::memory_order_relaxed);
}

void PgConnection::fail(const PgError& failure) {
  if (failure.stale_plan()) {
    spdlog::info("postgres: the schema changed under a prepared statement; preparing again");
    statements_stale_ = true;
    if (plan_epoch_) plan_epoch_->fetch_add(1, std::memory_order_relaxed);
  }
  throw failure;
}

// The name of `sql`'s prepared statement on this connection, preparing it the first time.
asio::awaitable<const std::string*> PgConnection::prepare(const char* sql) {
  const std::uint64_t epoch = plan_epoch_ ? plan_epoch_->load(std::memory_order_relaxed) : 0;
  if (statements_stale_ || epoch != statements_epoch_) {
    // Not transactional, so allowed in the transaction a retry has begun.
    co_await query("DEALLOCATE ALL");
    statements_.clear();
    ++statements_cleared_;
    statements_stale_ = false;
    statements_epoch_ = epoch;
  }
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    std::string name = "s" + std::to_string(statements_.size() + 1);
    if (PQsendPrepare(conn_, name.c_str(), sql, 0, nullptr) == 0)
      throw Unavailable(connection_error(conn_));
    co_await flush();
    co_await collect();
    it = statements_.emplace(sql, std::move(name)).first;
  }
  co_return &it->second;
}

asio::awaitable<PgResult> PgConnection::prepared(const char* sql, PgParams params) {
  metrics::DbCallTimer timed(query_metrics());
  const std::string* name = co_await prepare(sql);
  Encoded enc(params);
  if (PQsendQueryPrepared(conn_, name->c_str(), static_cast<int>(enc.values.size()),
                          enc.values.data(), nullptr, nullptr, 0) == 0) {
    throw Unavailable(connection_error(conn_));
  }
  co_await flush();
  auto result = co_await collect();
  timed.ok();
  co_return result;
}

// The next result once it has arrived (null between the statements of a pipeline).
asio::awaitable<pg_result*> PgConnection::next_result() {
  while (PQisBusy(conn_) != 0) {
    co_await wait(asio::posix::stream_descriptor::wait_read);
    if (PQconsumeInput(conn_) == 0) throw Unavailable(connection_error(conn_));
  }
  co_return PQgetResult(conn_);
}

asio::awaitable<std::vector<PgResult>> PgConnection::pipeline(std::vector<PgStatement> statements) {
  metrics::DbCallTimer timed(pipeline_metrics());
  // Every statement prepared, by names that all still stand: a prepare() that meets a new
  // plan epoch deallocates the ones before it (and frees their names), so the round starts
  // over when that happened.
  std::vector<std::string> names;
  names.reserve(statements.size());
  for (;;) {
    const std::uint64_t cleared = statements_cleared_;
    names.clear();
    for (const auto& s : statements) names.push_back(*co_await prepare(s.sql));
    if (statements_cleared_ == cleared) break;
  }
  if (PQenterPipelineMode(conn_) == 0) throw Unavailable(connection_error(conn_));
  for (std::size_t i = 0; i < statements.size(); ++i) {
    Encoded enc(statements[i].params);
    if (PQsendQueryPrepared(conn_, names[i].c_str(), static_cast<int>(enc.values.size()),
                            enc.values.data(), nullptr, nullptr, 0) == 0) {
      throw Unavailable(connection_error(conn_));  // the pool drops the broken connection
    }
  }
  if (PQpipelineSync(conn_) == 0) throw Unavailable(connection_error(conn_));
  co_await flush();
  std::vector<PgResult> results(statements.size());
  std::optional<PgError> failure;
  for (std::size_t i = 0; i < statements.size(); ++i) {
    // Each statement's results end with a null.
    while (pg_result* r = co_await next_result()) {
      const auto status = PQresultStatus(r);
      if (status == PGRES_FATAL_ERROR && !failure) failure.emplace(error_of(r));
      results[i] = PgResult(r);
    }
  }
  // Then the sync point, after which the connection leaves pipeline mode clean.
  pg_result* sync = co_await next_result();
  const bool synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  if (!synced || PQexitPipelineMode(conn_) == 0) throw Unavailable(connection_error(conn_));
  if (!healthy()) throw Unavailable(connection_error(conn_));
  if (failure) fail(*failure);
  timed.ok();
  co_return results;
}

asio::awaitable<void> PgConnection::script(const std::string& sql) {
  if (PQsendQuery(conn_, sql.c_str()) == 0) throw Unavailable(connection_error(conn_));
  co_await flush();
  co_await collect();
}

}  // namespace chat::store::postgres
