// test/unit/smtp/command_test.cc — CommandLineReader (replayed at every split point) and
// parse_command (a table of lines and the exact command each gives).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "lib/smtp/command.h"

using namespace std::string_literals;
using dotgate::smtp::Command;
using dotgate::smtp::CommandLineReader;
using dotgate::smtp::LineResult;
using dotgate::smtp::parse_command;
using dotgate::smtp::Verb;

namespace {

// The reader's events for an input delivered in chunks, as the Session would drive it: a buffer
// that grows by each chunk and shrinks by `consumed`. Events: "L:<line>" or "TOOLONG".
std::vector<std::string> read_all(std::string_view input, const std::vector<std::size_t>& cuts,
                                  std::size_t max_line, std::size_t* max_buffer = nullptr) {
  CommandLineReader reader(max_line);
  std::vector<std::string> events;
  std::string buffer;
  std::size_t start = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  for (std::size_t end : ends) {
    buffer.append(input.substr(start, end - start));
    start = end;
    if (max_buffer && buffer.size() > *max_buffer) *max_buffer = buffer.size();
    for (;;) {
      LineResult r = reader.next(buffer);
      REQUIRE(r.consumed <= buffer.size());
      if (r.kind == LineResult::Kind::Line) events.push_back("L:" + std::string(r.line));
      if (r.kind == LineResult::Kind::TooLong) events.push_back("TOOLONG");
      buffer.erase(0, r.consumed);
      if (r.kind == LineResult::Kind::Incomplete) break;
    }
  }
  return events;
}

std::vector<std::string> replay(std::string_view input, std::size_t max_line) {
  auto whole = read_all(input, {}, max_line);
  for (std::size_t i = 0; i <= input.size(); ++i) {
    auto split = read_all(input, {i}, max_line);
    if (split != whole) FAIL_CHECK("split at " << i << " differs");
  }
  if (input.size() <= 64) {
    for (std::size_t i = 0; i <= input.size(); ++i) {
      for (std::size_t j = i; j <= input.size(); ++j) {
        if (read_all(input, {i, j}, max_line) != whole) FAIL_CHECK("split at " << i << "," << j);
      }
    }
  }
  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < input.size(); ++i) bytewise.push_back(i);
  CHECK(read_all(input, bytewise, max_line) == whole);
  return whole;
}

struct ReaderCase {
  const char* name;
  std::string input;
  std::size_t max_line;
  std::vector<std::string> events;
};

}  // namespace

TEST_CASE("command line reader: table replayed at every split point") {
  const std::vector<ReaderCase> cases = {
      {"CRLF lines", "EHLO a\r\nMAIL FROM:<>\r\n", 512, {"L:EHLO a", "L:MAIL FROM:<>"}},
      {"bare LF tolerated", "EHLO a\nQUIT\n", 512, {"L:EHLO a", "L:QUIT"}},
      {"only one CR stripped", "NOOP\r\r\n", 512, {"L:NOOP\r"}},
      {"bare CR stays inside the line", "NO\rOP\r\n", 512, {"L:NO\rOP"}},
      {"empty line", "\r\n", 512, {"L:"}},
      {"unterminated line waits", "QUIT", 512, {}},
      {"exactly max with CRLF", "12345678\r\n", 10, {"L:12345678"}},
      {"exactly max with LF", "123456789\n", 10, {"L:123456789"}},
      {"one over with CRLF", "123456789\r\nNOOP\r\n", 10, {"TOOLONG", "L:NOOP"}},
      {"one over with LF", "1234567890\nNOOP\r\n", 10, {"TOOLONG", "L:NOOP"}},
      {"far over, reported once", std::string(300, 'x') + "\r\nQUIT\r\n", 10, {"TOOLONG", "L:QUIT"}},
      {"two long lines", std::string(30, 'x') + "\n" + std::string(30, 'y') + "\r\nA\r\n", 10,
       {"TOOLONG", "TOOLONG", "L:A"}},
      {"long line still open", std::string(30, 'x'), 10, {}},
      {"NUL passes to the parser", "NO\0OP\r\n"s, 512, {"L:NO\0OP"s}},
  };
  for (const auto& c : cases) {
    INFO("case: " << std::string(c.name));
    CHECK(replay(c.input, c.max_line) == c.events);
  }
}

TEST_CASE("command line reader: an endless line never grows the buffer past the limit") {
  std::string endless(100000, 'x');
  std::size_t max_buffer = 0;
  std::vector<std::size_t> cuts;
  for (std::size_t i = 100; i < endless.size(); i += 100) cuts.push_back(i);
  auto events = read_all(endless + "\r\nQUIT\r\n", cuts, 512, &max_buffer);
  CHECK(events == std::vector<std::string>{"TOOLONG", "L:QUIT"});
  CHECK(max_buffer < 512 + 100);
}

TEST_CASE("command line reader: reset forgets a discarded line") {
  CommandLineReader reader(10);
  std::string long_part(20, 'x');
  auto r = reader.next(long_part);
  CHECK(r.kind == LineResult::Kind::Incomplete);
  CHECK(r.consumed == 20);
  reader.reset();
  r = reader.next("QUIT\r\n");
  CHECK(r.kind == LineResult::Kind::Line);
  CHECK(r.line == "QUIT");
  CHECK(r.consumed == 6);
}

namespace {

struct ParseCase {
  std::string line;
  Verb verb;
  std::string argument;
  std::string address;
  std::string params;  // "KEY=value KEY" as parsed (keyword upper-cased), to compare exactly
  std::string error;   // empty: ok
};

std::string params_of(const Command& cmd) {
  std::string s;
  for (const auto& p : cmd.params) {
    if (!s.empty()) s += ' ';
    s += p.keyword;
    if (p.has_value) s += "=" + p.value;
  }
  return s;
}

const std::string kMailSyntax = "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]";
const std::string kRcptSyntax = "501 5.5.4 Syntax: RCPT TO:<address> [parameters]";
const std::string kBareCrNul = "501 5.5.2 Syntax error: bare CR or NUL in command line";

}  // namespace

TEST_CASE("parse_command: table") {
  const std::vector<ParseCase> cases = {
      {"EHLO mx.example.org", Verb::Ehlo, "mx.example.org", "", "", ""},
      {"ehlo  mx.example.org  ", Verb::Ehlo, "mx.example.org", "", "", ""},
      {"HeLo x", Verb::Helo, "x", "", "", ""},
      {"EHLO", Verb::Ehlo, "", "", "", "501 5.5.4 Syntax: EHLO hostname"},
      {"HELO   ", Verb::Helo, "", "", "", "501 5.5.4 Syntax: HELO hostname"},
      {"MAIL FROM:<a@b.example>", Verb::Mail, "FROM:<a@b.example>", "a@b.example", "", ""},
      {"mail from:<a@b> size=10 BODY=8BITMIME", Verb::Mail, "from:<a@b> size=10 BODY=8BITMIME", "a@b",
       "SIZE=10 BODY=8BITMIME", ""},
      {"MAIL FROM:<>", Verb::Mail, "FROM:<>", "", "", ""},
      {"MAIL FROM:<> PRDR", Verb::Mail, "FROM:<> PRDR", "", "PRDR", ""},
      {"MAIL FROM: <a@b>", Verb::Mail, "FROM: <a@b>", "a@b", "", ""},
      {"MAIL FROM:<a@b>  SIZE=1  SMTPUTF8 ", Verb::Mail, "FROM:<a@b>  SIZE=1  SMTPUTF8", "a@b",
       "SIZE=1 SMTPUTF8", ""},
      {"MAIL FROM:<\"a>b\"@c>", Verb::Mail, "FROM:<\"a>b\"@c>", "\"a>b\"@c", "", ""},
      {"MAIL FROM:<@r1,@r2:u@d>", Verb::Mail, "FROM:<@r1,@r2:u@d>", "@r1,@r2:u@d", "", ""},
      {"MAIL FROM:a@b", Verb::Mail, "FROM:a@b", "", "", kMailSyntax},
      {"MAIL FROM:<a@b", Verb::Mail, "FROM:<a@b", "", "", kMailSyntax},
      {"MAIL FROM:<a@b>SIZE=1", Verb::Mail, "FROM:<a@b>SIZE=1", "", "", kMailSyntax},
      {"MAIL FROM:<a@b> =1", Verb::Mail, "FROM:<a@b> =1", "", "", kMailSyntax},
      {"MAIL FROM:<a@b> SIZE=", Verb::Mail, "FROM:<a@b> SIZE=", "", "", kMailSyntax},
      {"MAIL FROM:<a@b> SI_ZE=1", Verb::Mail, "FROM:<a@b> SI_ZE=1", "", "", kMailSyntax},
      {"MAIL TO:<a@b>", Verb::Mail, "TO:<a@b>", "", "", kMailSyntax},
      {"MAIL", Verb::Mail, "", "", "", kMailSyntax},
      {"RCPT TO:<postmaster>", Verb::Rcpt, "TO:<postmaster>", "postmaster", "", ""},
      {"rcpt to:<u@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@d", Verb::Rcpt,
       "to:<u@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@d", "u@d", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@d",
       ""},
      {"RCPT TO: <u@d>", Verb::Rcpt, "TO: <u@d>", "u@d", "", ""},
      {"RCPT TO:<>", Verb::Rcpt, "TO:<>", "", "", kRcptSyntax},
      {"RCPT TO:u@d", Verb::Rcpt, "TO:u@d", "", "", kRcptSyntax},
      {"RCPT FROM:<u@d>", Verb::Rcpt, "FROM:<u@d>", "", "", kRcptSyntax},
      {"DATA", Verb::Data, "", "", "", ""},
      {"data  ", Verb::Data, "", "", "", ""},
      {"DATA x", Verb::Data, "x", "", "", "501 5.5.4 Syntax error: DATA takes no parameters"},
      {"RSET", Verb::Rset, "", "", "", ""},
      {"RSET now", Verb::Rset, "now", "", "", "501 5.5.4 Syntax error: RSET takes no parameters"},
      {"QUIT", Verb::Quit, "", "", "", ""},
      {"QUIT please", Verb::Quit, "please", "", "", "501 5.5.4 Syntax error: QUIT takes no parameters"},
      {"STARTTLS x", Verb::Starttls, "x", "", "", "501 5.5.4 Syntax error: STARTTLS takes no parameters"},
      {"NOOP", Verb::Noop, "", "", "", ""},
      {"NOOP anything at all", Verb::Noop, "anything at all", "", "", ""},
      {"HELP", Verb::Help, "", "", "", ""},
      {"HELP MAIL", Verb::Help, "MAIL", "", "", ""},
      {"VRFY postmaster", Verb::Vrfy, "postmaster", "", "", ""},
      {"EXPN list", Verb::Expn, "list", "", "", ""},
      {"AUTH PLAIN AGFiAGM=", Verb::Auth, "PLAIN AGFiAGM=", "", "", ""},
      {"BDAT 100 LAST", Verb::Bdat, "100 LAST", "", "", ""},
      {"XCLIENT ADDR=1.2.3.4", Verb::Xclient, "ADDR=1.2.3.4", "", "", ""},
      {"XFORWARD NAME=x", Verb::Xforward, "NAME=x", "", "", ""},
      {"STARTTLS", Verb::Starttls, "", "", "", ""},
      {"FOO bar", Verb::Unknown, "bar", "", "", ""},
      {"MAILFROM:<a@b>", Verb::Unknown, "", "", "", ""},
      {"", Verb::Unknown, "", "", "", ""},
      {"NOOP a\rb", Verb::Noop, "a\rb", "", "", kBareCrNul},
      {"NOOP a\0b"s, Verb::Noop, "a\0b"s, "", "", kBareCrNul},
      {"MAIL FROM:<a\0@b>"s, Verb::Mail, "FROM:<a\0@b>"s, "", "", kBareCrNul},
      {"FOO\rBAR", Verb::Unknown, "", "", "", kBareCrNul},
  };
  for (const auto& c : cases) {
    INFO("line: " << doctest::toString(c.line));
    Command cmd = parse_command(c.line);
    CHECK(cmd.line == c.line);
    CHECK(cmd.verb == c.verb);
    CHECK(cmd.argument == c.argument);
    CHECK(cmd.address == c.address);
    CHECK(params_of(cmd) == c.params);
    CHECK(cmd.error == c.error);
    CHECK(cmd.ok() == c.error.empty());
  }
}

TEST_CASE("parse_command: parameter lookup is case-insensitive") {
  Command cmd = parse_command("MAIL FROM:<a@b> size=100 body=8BITMIME smtputf8");
  REQUIRE(cmd.ok());
  REQUIRE(cmd.param("SIZE") != nullptr);
  CHECK(cmd.param("Size")->value == "100");
  CHECK(cmd.param("size")->has_value);
  CHECK(cmd.param("BODY")->value == "8BITMIME");
  REQUIRE(cmd.param("SMTPUTF8") != nullptr);
  CHECK_FALSE(cmd.param("SMTPUTF8")->has_value);
  CHECK(cmd.param("SMTPUTF8")->value.empty());
  CHECK(cmd.param("PRDR") == nullptr);
}

TEST_CASE("verb_name") {
  CHECK(dotgate::smtp::verb_name(Verb::Mail) == "MAIL");
  CHECK(dotgate::smtp::verb_name(Verb::Starttls) == "STARTTLS");
  CHECK(dotgate::smtp::verb_name(Verb::Xforward) == "XFORWARD");
  CHECK(dotgate::smtp::verb_name(Verb::Unknown) == "UNKNOWN");
}

TEST_CASE("declared_size_exceeds: a number above the limit, 64-bit overflow, not-a-number left to the MTA") {
  using dotgate::smtp::declared_size_exceeds;
  CHECK_FALSE(declared_size_exceeds("1000", 1000));
  CHECK(declared_size_exceeds("1001", 1000));
  CHECK_FALSE(declared_size_exceeds("0", 0));
  CHECK_FALSE(declared_size_exceeds("", 1000));
  CHECK(declared_size_exceeds("18446744073709551615", 1000));
  CHECK(declared_size_exceeds("99999999999999999999999999", UINT64_MAX));  // past 64 bits
  CHECK_FALSE(declared_size_exceeds("12x", 1));   // not a number: the downstream judges it
  CHECK_FALSE(declared_size_exceeds("-5", 1));
}
