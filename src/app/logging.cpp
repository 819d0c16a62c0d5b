#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "app/commands.hpp"

namespace chat::app {

void configure_logging(const config::Settings& settings) {
  auto logger = spdlog::stderr_logger_mt("chatd");
  if (settings.log_format == "json") {
    logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","msg":"%v"})",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::from_str(settings.log_level));
  spdlog::set_default_logger(logger);
}

}  // namespace chat::app
