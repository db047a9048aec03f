// lib/log/log.cc — see log.h.
#include "lib/log/log.h"

#include <atomic>

#include <spdlog/sinks/stdout_sinks.h>

namespace dotgate::log {

namespace {
std::atomic<bool> g_json{false};
}  // namespace

bool setup(config::LogFormat format, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  auto logger = std::make_shared<spdlog::logger>("dotgate", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  g_json = format == config::LogFormat::Json;
  logger->set_pattern(g_json ? "%v" : "%Y-%m-%dT%H:%M:%S.%e %l [%t] %v");
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::trace);  // lines reach the collector at once, also on a crash
  spdlog::set_default_logger(logger);
  return true;
}

Line start_line(spdlog::level::level_enum level, std::string_view msg) {
  auto name = spdlog::level::to_string_view(level);
  bool json = g_json.load(std::memory_order_relaxed);
  double time = json ? std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() : 0;
  return Line(std::string_view(name.data(), name.size()), msg, json, time);
}

void write(spdlog::level::level_enum level, Line& line) { spdlog::log(level, "{}", line.finish()); }

void event(spdlog::level::level_enum level, std::string_view msg, const nlohmann::json& fields) {
  if (!spdlog::should_log(level)) return;
  Line line = start_line(level, msg);
  for (auto it = fields.begin(); it != fields.end(); ++it) {
    if (it.value().is_string())
      line.str(it.key(), it.value().get_ref<const std::string&>());
    else
      line.json(it.key()) += it.value().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  write(level, line);
}

}  // namespace dotgate::log
