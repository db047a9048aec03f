// lib/log/log.h — dotgate's log lines: one call, text or JSON, over spdlog.
//
// Every log line goes through event(): in text mode "msg key=value key=value", in JSON mode one
// JSON object a line ({"time":..., "level":..., "msg":..., fields...}) for collectors. Thread-safe
// (spdlog's _mt sink). setup() is called once at start-up before any worker starts.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "lib/config/config.h"
#include "lib/log/line.h"

namespace dotgate::log {

// Returns false (and leaves logging as it was) when `level` is not a spdlog level name.
bool setup(config::LogFormat format, const std::string& level);
void event(spdlog::level::level_enum level, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

inline void info(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) { event(spdlog::level::info, msg, f); }
inline void warn(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) { event(spdlog::level::warn, msg, f); }
inline void error(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) { event(spdlog::level::err, msg, f); }
inline void debug(std::string_view msg, const nlohmann::json& f = nlohmann::json::object()) { event(spdlog::level::debug, msg, f); }
inline bool enabled(spdlog::level::level_enum level) { return spdlog::should_log(level); }

// For a line written often (the transaction line): built field by field in the configured format
// (log/line.h), then written. event() is the same two steps over a json object's fields.
Line start_line(spdlog::level::level_enum level, std::string_view msg);
void write(spdlog::level::level_enum level, Line& line);

}  // namespace dotgate::log
