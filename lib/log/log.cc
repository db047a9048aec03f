// lib/log/log.cc — see log.h.
#include "lib/log/log.h"

#include <atomic>

#include <spdlog/sinks/stdout_sinks.h>

namespace dotgate::log {

namespace {
std::atomic<bool> g_json{false};

// Text mode values: bare when they are simple, quoted (JSON string escaping) otherwise, so a
// line stays parseable when a HELO name or a reply text holds spaces or quotes.
void append_text_value(std::string& out, const nlohmann::json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    bool simple = !s.empty();
    for (unsigned char c : s)
      if (c <= ' ' || c == '"' || c == '=' || c >= 0x7f) { simple = false; break; }
    out += simple ? s : nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}
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

void event(spdlog::level::level_enum level, std::string_view msg, const nlohmann::json& fields) {
  if (!spdlog::should_log(level)) return;
  std::string line;
  if (g_json) {
    nlohmann::json j = nlohmann::json::object();
    auto now = std::chrono::system_clock::now();
    j["time"] = std::chrono::duration<double>(now.time_since_epoch()).count();
    j["level"] = spdlog::level::to_string_view(level).data();
    j["msg"] = msg;
    for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = it.value();
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line.assign(msg);
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      line += ' ';
      line += it.key();
      line += '=';
      append_text_value(line, it.value());
    }
  }
  spdlog::log(level, "{}", line);
}

}  // namespace dotgate::log
