// lib/log/line.cc — see line.h.
#include "lib/log/line.h"

#include <charconv>
#include <cmath>

#include <nlohmann/json.hpp>

namespace dotgate::log {

namespace {
// A value text mode writes as it is: it cannot be mistaken for the next field or a quoted one.
bool simple_text(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (c <= ' ' || c == '"' || c == '=' || c >= 0x7f) return false;
  return true;
}
}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      // Escapes, UTF-8 and its repair are rare in a log field: nlohmann's serializer does them.
      out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    }
  }
  out += '"';
  out += s;
  out += '"';
}

void append_json_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_json_double(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[40];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string_view text(buf, static_cast<std::size_t>(r.ptr - buf));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

Line::Line(std::string_view level, std::string_view msg, bool json, double time) : json_(json) {
  out_.reserve(256);
  if (json_) {
    out_ += "{\"time\":";
    append_json_double(out_, time);
    out_ += ",\"level\":";
    append_json_string(out_, level);
    out_ += ",\"msg\":";
    append_json_string(out_, msg);
  } else {
    out_ += msg;
  }
}

void Line::key(std::string_view k) {
  if (json_) {
    out_ += ',';
    append_json_string(out_, k);
    out_ += ':';
  } else {
    out_ += ' ';
    out_ += k;
    out_ += '=';
  }
}

Line& Line::str(std::string_view k, std::string_view value) {
  key(k);
  if (!json_ && simple_text(value))
    out_ += value;
  else
    append_json_string(out_, value);
  return *this;
}

Line& Line::num(std::string_view k, std::uint64_t value) {
  key(k);
  append_json_uint(out_, value);
  return *this;
}

std::string& Line::json(std::string_view k) {
  key(k);
  return out_;
}

const std::string& Line::finish() {
  if (json_) out_ += '}';
  return out_;
}

}  // namespace dotgate::log
