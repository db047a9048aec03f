// lib/smtp/command.h — client command input: splitting bytes into command lines, parsing a line.
//
// Pure (no sockets, no loop): the Session owns the input buffer and calls CommandLineReader::next
// once per line, so it can stop after DATA and hand the rest of the buffer to the DataStream.
// Nothing here allocates per byte; parse_command copies only the parts a Session keeps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::smtp {

// RFC 5321 4.5.3.1.4: a command line is at most 512 octets including CRLF.
inline constexpr std::size_t kMaxCommandLine = 512;

enum class Verb {
  Helo, Ehlo, Mail, Rcpt, Data, Rset, Noop, Quit, Help, Vrfy, Expn,
  Starttls, Auth, Bdat, Xclient, Xforward, Unknown
};

std::string_view verb_name(Verb verb);  // "MAIL", ..., "UNKNOWN"

struct EsmtpParam {
  std::string keyword;  // upper-cased, e.g. "SIZE", "BODY", "PRDR"
  std::string value;    // empty when the parameter has no "=value"
  bool has_value = false;
};

// MAIL FROM's SIZE=value (RFC 1870) against `limit`: true when the value is a number above it
// (any number too large for 64 bits is). A value that is not a number is not judged here: the
// downstream judges the syntax.
bool declared_size_exceeds(std::string_view value, std::uint64_t limit);

struct Command {
  Verb verb = Verb::Unknown;
  std::string line;      // the whole line without its terminator, as received
  std::string argument;  // text after the verb and its separating space(s), trailing spaces removed
  // MAIL FROM / RCPT TO only:
  std::string address;   // between '<' and '>' (may be empty: MAIL FROM:<>)
  std::vector<EsmtpParam> params;
  // Non-empty when the line is not valid for its verb (bad MAIL/RCPT path or parameters, bare CR
  // or NUL in the line, missing HELO/EHLO argument, DATA/RSET/QUIT/STARTTLS with an argument).
  // It is the whole reply to send, code and enhanced code first: "501 5.5.4 Syntax: MAIL
  // FROM:<address> [parameters]", "501 5.5.2 Syntax error: bare CR or NUL in command line".
  // The Session answers it and relays nothing.
  std::string error;

  bool ok() const { return error.empty(); }
  const EsmtpParam* param(std::string_view keyword) const;  // case-insensitive lookup
};

// Parses one command line (without CRLF). Verbs are case-insensitive. "MAIL FROM:<a@b> SIZE=10",
// "RCPT TO:<postmaster>", a space after the colon is tolerated (common, RFC-violating clients).
Command parse_command(std::string_view line);

struct LineResult {
  enum class Kind {
    Incomplete,  // need more bytes; `consumed` bytes may be dropped from the buffer
    Line,        // `line` is a complete command line (terminator stripped); drop `consumed`
    TooLong,     // a line over the limit just ended; it was discarded; answer 500 5.5.2 once
  };
  Kind kind = Kind::Incomplete;
  std::string_view line;  // span into the caller's buffer, valid until it changes
  std::size_t consumed = 0;
};

// Splits client input into command lines. A line ends at LF (a preceding CR is stripped): clients
// that send bare LF in commands are common and harmless there (unlike in DATA). A line longer than
// max_line octets (terminator included) is discarded up to its end, however long: that is the
// attack of a client sending an endless line to exhaust memory.
class CommandLineReader {
 public:
  explicit CommandLineReader(std::size_t max_line = kMaxCommandLine) : max_line_(max_line) {}
  LineResult next(std::string_view input);
  void reset() { discarding_ = false; }

 private:
  std::size_t max_line_;
  bool discarding_ = false;
};

}  // namespace dotgate::smtp
