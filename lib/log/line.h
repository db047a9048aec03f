// lib/log/line.h — one log line written field by field into one buffer.
//
// The same bytes as log::event() gives for the same fields (text: `msg key=value ...`, a value
// bare when simple and JSON-quoted otherwise, arrays and objects as compact JSON; JSON: one object,
// "time", "level" and "msg" first), without building a nlohmann::json first. What it is for: the
// transaction line, written once per message on the worker's loop, where the json tree (a
// std::map node and a string per field, then a dump) cost about 45 allocations. Pure: no spdlog,
// no clock; log::event() and the unit tests use it directly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dotgate::log {

class Line {
 public:
  // `time`: seconds since the epoch, written in JSON mode only.
  Line(std::string_view level, std::string_view msg, bool json, double time);

  Line& str(std::string_view key, std::string_view value);
  Line& num(std::string_view key, std::uint64_t value);
  // A JSON value (array, object, number) the caller appends to the returned buffer, with the
  // helpers below; the next field or finish() follows it.
  std::string& json(std::string_view key);

  // The line, without a newline. The Line is done after this.
  const std::string& finish();

 private:
  void key(std::string_view k);

  std::string out_;
  bool json_;
};

// JSON text for a string (quoted, escaped; invalid UTF-8 replaced by U+FFFD, as nlohmann's dump
// with error_handler_t::replace), an unsigned integer and a double (nlohmann's form: shortest
// round trip, ".0" on an integral value, null for NaN and infinities).
void append_json_string(std::string& out, std::string_view s);
void append_json_uint(std::string& out, std::uint64_t v);
void append_json_double(std::string& out, double v);

}  // namespace dotgate::log
