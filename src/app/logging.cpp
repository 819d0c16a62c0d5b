#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <ctime>

#include "app/commands.hpp"
#include "common/json_text.hpp"
#include "common/log_event.hpp"

namespace chat::app {
namespace {

// LOG_FORMAT=json: one JSON object per line, {"time","level"} and then either the fields
// of a structured event (logs::Event) or the escaped text of any other line as "msg".
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line = "{\"time\":\"";
    const auto since_epoch = msg.time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds).count();
    const std::time_t t = seconds.count();
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char stamp[48];
    const auto n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(stamp + n, sizeof stamp - n, ".%06lldZ", static_cast<long long>(micros));
    line += stamp;
    line += "\",\"level\":\"";
    const auto level = spdlog::level::to_string_view(msg.level);
    line.append(level.data(), level.size());
    line += "\",";
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (std::string_view(msg.logger_name.data(), msg.logger_name.size()) == logs::kEventLogger) {
      line += payload;  // already the escaped fields of an object
    } else {
      line += "\"msg\":";
      json_text::append_string(line, payload);
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }

  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

void configure_logging(const config::Settings& settings) {
  // Two loggers on one sink (one formatter): free text, and structured events.
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("chatd", sink);
  auto events = std::make_shared<spdlog::logger>(logs::kEventLogger, sink);
  const bool json = settings.log_format == "json";
  logs::set_json(json);
  if (json) {
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc));
  }
  const auto level = spdlog::level::from_str(settings.log_level);
  logger->set_level(level);
  events->set_level(level);
  spdlog::set_default_logger(logger);
  spdlog::register_logger(events);
}

}  // namespace chat::app
