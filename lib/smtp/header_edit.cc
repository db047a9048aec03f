// lib/smtp/header_edit.cc — see header_edit.h.
#include "lib/smtp/header_edit.h"

#include <algorithm>
#include <cctype>

namespace dotgate::smtp {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The field name of a header line, or empty when the line is not a field. Obsolete syntax
// (RFC 5322 4.5.8) allows white space before the colon.
std::string_view field_name(std::string_view line) {
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return {};
  std::string_view name = line.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  if (!valid_field_name(name)) return {};
  return name;
}
}  // namespace

bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return c > 32 && c < 127 && c != ':'; });
}

std::string edit_header(std::string_view wire, const HeaderFields& add, const std::vector<std::string>& remove) {
  std::string out;
  out.reserve(wire.size() + 256);
  for (const auto& [name, value] : add) {
    if (!valid_field_name(name)) continue;
    std::string line = name + ": " + value;
    std::replace_if(line.begin(), line.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
    if (line.front() == '.') out += '.';  // the wire form is dot-stuffed
    out += line;
    out += "\r\n";
  }
  std::size_t pos = 0;
  bool dropping = false;  // inside a removed field: its continuation lines go too
  while (pos < wire.size()) {
    std::size_t end = wire.find("\r\n", pos);
    std::size_t next = end == std::string_view::npos ? wire.size() : end + 2;
    std::string_view line = wire.substr(pos, (end == std::string_view::npos ? wire.size() : end) - pos);
    if (line.empty()) break;  // the empty line: the body follows, copied as it is
    if (line.front() == ' ' || line.front() == '\t') {
      if (!dropping) out.append(wire.substr(pos, next - pos));
      pos = next;
      continue;
    }
    std::string_view unstuffed = line.front() == '.' ? line.substr(1) : line;
    std::string_view name = field_name(unstuffed);
    if (name.empty()) break;  // not a header line: the rest is body, left alone
    dropping = std::any_of(remove.begin(), remove.end(), [&](const std::string& r) { return iequals(r, name); });
    if (!dropping) out.append(wire.substr(pos, next - pos));
    pos = next;
  }
  out.append(wire.substr(pos));
  return out;
}

}  // namespace dotgate::smtp
