// lib/smtp/command.cc — splitting client input into command lines and parsing one command line.
//
// Called by the Session (ClientSide input) once per line; pure: no sockets, no loop, no state but
// the reader's "discarding an over-long line" flag. Errors are returned in Command::error as a
// complete reply line ("501 5.5.4 ..."), never thrown: bad input gets a clear reply and the
// session goes on (DESIGN.md invariant 6).
#include "lib/smtp/command.h"

#include <array>
#include <utility>

namespace dotgate::smtp {
namespace {

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

struct VerbEntry {
  std::string_view name;
  Verb verb;
};

// One table ties each verb to its name (both directions).
constexpr std::array<VerbEntry, 16> kVerbs{{
    {"HELO", Verb::Helo},         {"EHLO", Verb::Ehlo},   {"MAIL", Verb::Mail},
    {"RCPT", Verb::Rcpt},         {"DATA", Verb::Data},   {"RSET", Verb::Rset},
    {"NOOP", Verb::Noop},         {"QUIT", Verb::Quit},   {"HELP", Verb::Help},
    {"VRFY", Verb::Vrfy},         {"EXPN", Verb::Expn},   {"STARTTLS", Verb::Starttls},
    {"AUTH", Verb::Auth},         {"BDAT", Verb::Bdat},   {"XCLIENT", Verb::Xclient},
    {"XFORWARD", Verb::Xforward},
}};

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Finds the '>' closing a path that starts with '<' at s[0]; a quoted local part may hold '>'
// ("<\"a>b\"@example.org>"). Returns npos when there is none.
std::size_t find_path_end(std::string_view s) {
  bool quoted = false;
  for (std::size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // quoted-pair: the next character is literal
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == '>') {
      return i;
    } else if (c == '<') {
      return std::string_view::npos;  // a path holds no unquoted '<'
    }
  }
  return std::string_view::npos;
}

// RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
// esmtp-value = 1*(%d33-60 / %d62-126). 8-bit octets are tolerated in values (SMTPUTF8 ORCPT).
bool parse_param(std::string_view word, EsmtpParam& param) {
  std::size_t eq = word.find('=');
  std::string_view keyword = word.substr(0, eq);
  if (keyword.empty() || !is_alnum(keyword.front())) return false;
  for (char c : keyword) {
    if (!is_alnum(c) && c != '-') return false;
  }
  param.keyword.clear();
  for (char c : keyword) param.keyword.push_back(ascii_upper(c));
  if (eq == std::string_view::npos) return true;
  std::string_view value = word.substr(eq + 1);
  if (value.empty()) return false;
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u < 33 || u == '=' || u == 127) return false;
  }
  param.value.assign(value);
  param.has_value = true;
  return true;
}

// "FROM:<path> params" / "TO:<path> params". `prefix` is "FROM:" or "TO:".
bool parse_path_and_params(std::string_view argument, std::string_view prefix, bool allow_empty,
                           Command& cmd) {
  if (!istarts_with(argument, prefix)) return false;
  std::string_view rest = argument.substr(prefix.size());
  // "MAIL FROM: <a@b>" violates RFC 5321 but is common; tolerate spaces after the colon.
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty() || rest.front() != '<') return false;
  std::size_t end = find_path_end(rest);
  if (end == std::string_view::npos) return false;
  std::string_view address = rest.substr(1, end - 1);
  if (address.empty() && !allow_empty) return false;
  for (char c : address) {
    if (static_cast<unsigned char>(c) < 32 || c == 127) return false;
  }
  cmd.address.assign(address);
  rest = rest.substr(end + 1);
  if (!rest.empty() && rest.front() != ' ') return false;  // "<a@b>SIZE=1"
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    std::size_t sp = rest.find(' ');
    std::string_view word = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
    EsmtpParam param;
    if (!parse_param(word, param)) return false;
    cmd.params.push_back(std::move(param));
  }
  return true;
}

}  // namespace

std::string_view verb_name(Verb verb) {
  for (const auto& entry : kVerbs) {
    if (entry.verb == verb) return entry.name;
  }
  return "UNKNOWN";
}

bool declared_size_exceeds(std::string_view value, std::uint64_t limit) {
  std::uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    if (n > (UINT64_MAX - 9) / 10) return true;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n > limit;
}

const EsmtpParam* Command::param(std::string_view keyword) const {
  for (const auto& p : params) {
    if (iequals(p.keyword, keyword)) return &p;
  }
  return nullptr;
}

Command parse_command(std::string_view line) {
  Command cmd;
  cmd.line.assign(line);

  std::size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  for (const auto& entry : kVerbs) {
    if (iequals(verb, entry.name)) {
      cmd.verb = entry.verb;
      break;
    }
  }
  if (sp != std::string_view::npos) cmd.argument.assign(trim_spaces(line.substr(sp)));

  // A CR or NUL inside a command line is never legitimate; relaying it would let a client put
  // bytes in front of the downstream that its own parser may split differently.
  if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos) {
    cmd.error = "501 5.5.2 Syntax error: bare CR or NUL in command line";
    return cmd;
  }

  switch (cmd.verb) {
    case Verb::Helo:
    case Verb::Ehlo:
      if (cmd.argument.empty()) {
        cmd.error = cmd.verb == Verb::Helo ? "501 5.5.4 Syntax: HELO hostname"
                                           : "501 5.5.4 Syntax: EHLO hostname";
      }
      break;
    case Verb::Mail:
      if (!parse_path_and_params(cmd.argument, "FROM:", true, cmd)) {
        cmd.address.clear();
        cmd.params.clear();
        cmd.error = "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]";
      }
      break;
    case Verb::Rcpt:
      if (!parse_path_and_params(cmd.argument, "TO:", false, cmd)) {
        cmd.address.clear();
        cmd.params.clear();
        cmd.error = "501 5.5.4 Syntax: RCPT TO:<address> [parameters]";
      }
      break;
    case Verb::Data:
    case Verb::Rset:
    case Verb::Quit:
    case Verb::Starttls:  // RFC 3207 4: "501 Syntax error (no parameters allowed)"
      if (!cmd.argument.empty()) {
        cmd.error = "501 5.5.4 Syntax error: " + std::string(verb_name(cmd.verb)) +
                    " takes no parameters";
      }
      break;
    default:
      break;  // NOOP/HELP/VRFY/... may carry arguments; unknown verbs are relayed as they are
  }
  return cmd;
}

LineResult CommandLineReader::next(std::string_view input) {
  LineResult result;
  std::size_t lf = input.find('\n');
  if (discarding_) {
    // Still inside an over-long line: drop everything up to and including its LF.
    if (lf == std::string_view::npos) {
      result.consumed = input.size();
      return result;
    }
    discarding_ = false;
    result.kind = LineResult::Kind::TooLong;
    result.consumed = lf + 1;
    return result;
  }
  if (lf == std::string_view::npos) {
    // max_line octets without an LF: with its terminator the line will be over the limit. Start
    // discarding now so an endless line never grows the caller's buffer.
    if (input.size() >= max_line_) {
      discarding_ = true;
      result.consumed = input.size();
    }
    return result;
  }
  result.consumed = lf + 1;
  if (lf + 1 > max_line_) {
    result.kind = LineResult::Kind::TooLong;
    return result;
  }
  std::string_view line = input.substr(0, lf);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  result.kind = LineResult::Kind::Line;
  result.line = line;
  return result;
}

}  // namespace dotgate::smtp
