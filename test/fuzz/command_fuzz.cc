// test/fuzz/command_fuzz.cc — libFuzzer target for CommandLineReader and parse_command.
//
// Aborts when the reader gives different lines for a different chunking, returns a line holding an
// LF or longer than its limit, consumes more than it was given, or when a parsed command breaks
// what the Session relies on (an accepted line holds no CR or NUL; MAIL/RCPT paths are inside it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lib/smtp/command.h"

using dotgate::smtp::Command;
using dotgate::smtp::CommandLineReader;
using dotgate::smtp::LineResult;
using dotgate::smtp::parse_command;
using dotgate::smtp::Verb;

namespace {

std::vector<std::string> read_all(std::string_view in, std::size_t cut, std::size_t max_line) {
  CommandLineReader reader(max_line);
  std::vector<std::string> events;
  std::string buffer;
  std::size_t ends[] = {cut, in.size()};
  std::size_t start = 0;
  for (std::size_t end : ends) {
    buffer.append(in.substr(start, end - start));
    start = end;
    for (;;) {
      LineResult r = reader.next(buffer);
      if (r.consumed > buffer.size()) std::abort();
      if (r.kind == LineResult::Kind::Line) {
        if (r.line.find('\n') != std::string_view::npos) std::abort();
        if (r.line.size() + 1 > max_line) std::abort();
        events.emplace_back(r.line);
      } else if (r.kind == LineResult::Kind::TooLong) {
        events.emplace_back("\n");  // cannot be a line
      }
      buffer.erase(0, r.consumed);
      if (r.kind == LineResult::Kind::Incomplete) break;
    }
    // An unterminated line is never kept past max_line octets (the endless-line attack).
    if (buffer.size() >= max_line) std::abort();
  }
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t max_line = 2 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::size_t cut = in.empty() ? 0 : data[1] % (in.size() + 1);

  auto whole = read_all(in, in.size(), max_line);
  if (whole != read_all(in, cut, max_line)) std::abort();

  // Every line through the parser, plus the raw input as one line (longer, odder lines).
  whole.emplace_back(in);
  for (const auto& line : whole) {
    Command cmd = parse_command(line);
    if (cmd.line != line) std::abort();
    if (cmd.ok()) {
      if (line.find('\r') != std::string::npos || line.find('\0') != std::string::npos) std::abort();
      if ((cmd.verb == Verb::Helo || cmd.verb == Verb::Ehlo) && cmd.argument.empty()) std::abort();
      if (cmd.verb == Verb::Rcpt && cmd.address.empty()) std::abort();
      if ((cmd.verb == Verb::Mail || cmd.verb == Verb::Rcpt) &&
          line.find("<" + cmd.address + ">") == std::string::npos) {
        std::abort();
      }
      for (const auto& p : cmd.params) {
        if (p.keyword.empty() || cmd.param(p.keyword) == nullptr) std::abort();
      }
    } else if (cmd.error.size() < 4 || cmd.error.compare(0, 4, "501 ") != 0) {
      std::abort();
    }
    (void)dotgate::smtp::verb_name(cmd.verb);
  }
  return 0;
}
