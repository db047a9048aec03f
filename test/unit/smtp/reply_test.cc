// test/unit/smtp/reply_test.cc — Reply (wire form, enhanced codes) and ReplyParser, whose table
// of raw downstream bytes and expected replies is replayed at every split point.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "lib/smtp/reply.h"

using dotgate::smtp::has_enhanced_code;
using dotgate::smtp::Reply;
using dotgate::smtp::ReplyParser;
using dotgate::smtp::valid_reply_code;

TEST_CASE("Reply::serialize") {
  CHECK(Reply{250, {"ok"}}.serialize() == "250 ok\r\n");
  CHECK(Reply{250, {"a", "b"}}.serialize() == "250-a\r\n250 b\r\n");
  CHECK(Reply{250, {"mx", "PIPELINING", "SIZE 10"}}.serialize() ==
        "250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
  CHECK(Reply{354, {}}.serialize() == "354\r\n");
  CHECK(Reply{250, {""}}.serialize() == "250\r\n");
  CHECK(Reply{250, {"", "x"}}.serialize() == "250-\r\n250 x\r\n");
  // Text that would inject a line of its own is neutralised.
  CHECK(Reply{550, {"no\r\n250 ok"}}.serialize() == "550 no  250 ok\r\n");
}

TEST_CASE("Reply::make and accessors") {
  Reply r = Reply::make(451, "4.7.0", "Try again later");
  CHECK(r.code == 451);
  CHECK(r.lines == std::vector<std::string>{"4.7.0 Try again later"});
  CHECK(r.serialize() == "451 4.7.0 Try again later\r\n");
  CHECK(Reply::make(220, "", "mx ESMTP").serialize() == "220 mx ESMTP\r\n");
  CHECK(Reply::make(354, "", "End data with <CR><LF>.<CR><LF>").lines.front() ==
        "End data with <CR><LF>.<CR><LF>");
  CHECK(r.klass() == 4);
  CHECK(r.transient());
  CHECK_FALSE(r.positive());
  CHECK_FALSE(r.permanent());
  CHECK(Reply{354, {}}.positive());
  CHECK(Reply{554, {}}.permanent());
}

TEST_CASE("Reply::enhanced and has_enhanced_code") {
  CHECK(Reply{250, {"2.1.0 Ok"}}.enhanced() == "2.1.0");
  CHECK(Reply{550, {"5.7.1"}}.enhanced() == "5.7.1");
  CHECK(Reply{550, {"5.123.456 x"}}.enhanced() == "5.123.456");
  CHECK_FALSE(Reply{550, {"5.1234.1 x"}}.enhanced());
  CHECK_FALSE(Reply{550, {"5.1.1x"}}.enhanced());
  CHECK_FALSE(Reply{550, {"3.1.1 x"}}.enhanced());
  CHECK_FALSE(Reply{550, {"5..1 x"}}.enhanced());
  CHECK_FALSE(Reply{550, {"5.1. x"}}.enhanced());
  CHECK_FALSE(Reply{550, {"Mailbox 5.1.1"}}.enhanced());
  CHECK_FALSE(Reply{550, {}}.enhanced());
  CHECK_FALSE(Reply{250, {"", "2.0.0 second"}}.enhanced());

  CHECK(has_enhanced_code(250, "2.0.0 Ok"));
  CHECK(has_enhanced_code(451, "4.7.1"));
  CHECK_FALSE(has_enhanced_code(451, "5.7.1 wrong class"));
  CHECK_FALSE(has_enhanced_code(354, "3.0.0 no such class"));
  CHECK_FALSE(has_enhanced_code(250, "Ok"));
  CHECK_FALSE(has_enhanced_code(250, ""));
}

TEST_CASE("valid_reply_code") {
  for (int code : {200, 211, 220, 250, 354, 421, 450, 554, 559, 550, 253}) {
    CHECK_MESSAGE(valid_reply_code(code), code);
  }
  for (int code : {0, 199, 100, 160, 260, 599, 600, 999, -250, 1250, 465, 370}) {
    CHECK_FALSE_MESSAGE(valid_reply_code(code), code);
  }
}

namespace {

struct ParseResult {
  std::vector<std::string> replies;  // each reply serialised back
  bool failed = false;
  bool idle = true;

  bool operator==(const ParseResult&) const = default;
};

ParseResult parse(std::string_view input, const std::vector<std::size_t>& cuts) {
  ReplyParser parser;
  std::vector<Reply> out;
  std::size_t start = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  bool ok = true;
  for (std::size_t end : ends) {
    bool r = parser.feed(input.substr(start, end - start), out);
    if (!ok) CHECK_FALSE(r);  // sticky
    ok = ok && r;
    start = end;
  }
  ParseResult res;
  for (const auto& reply : out) res.replies.push_back(reply.serialize());
  res.failed = parser.failed();
  CHECK(res.failed == !ok);
  res.idle = parser.idle();
  return res;
}

ParseResult replay(std::string_view input) {
  ParseResult whole = parse(input, {});
  for (std::size_t i = 0; i <= input.size(); ++i) {
    if (!(parse(input, {i}) == whole)) FAIL_CHECK("split at " << i << " differs");
  }
  if (input.size() <= 64) {
    for (std::size_t i = 0; i <= input.size(); ++i) {
      for (std::size_t j = i; j <= input.size(); ++j) {
        if (!(parse(input, {i, j}) == whole)) FAIL_CHECK("split at " << i << "," << j);
      }
    }
  }
  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < input.size(); ++i) bytewise.push_back(i);
  CHECK(parse(input, bytewise) == whole);
  return whole;
}

struct Case {
  const char* name;
  std::string input;
  std::vector<std::string> replies;
  bool failed;
  bool idle;
};

}  // namespace

TEST_CASE("reply parser: table replayed at every split point") {
  const std::vector<Case> cases = {
      {"one line", "250 ok\r\n", {"250 ok\r\n"}, false, true},
      {"greeting", "220 mx.example.org ESMTP\r\n", {"220 mx.example.org ESMTP\r\n"}, false, true},
      {"multi-line", "250-mx\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
       {"250-mx\r\n250-PIPELINING\r\n250 SIZE 100\r\n"}, false, true},
      {"code alone", "250\r\n", {"250\r\n"}, false, true},
      {"empty continuation", "250-\r\n250 x\r\n", {"250-\r\n250 x\r\n"}, false, true},
      {"LF only tolerated", "250-a\n250 b\n354 go\n", {"250-a\r\n250 b\r\n", "354 go\r\n"}, false, true},
      {"pipelined replies", "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n",
       {"250 2.1.0 ok\r\n", "250 2.1.5 ok\r\n", "354 go ahead\r\n"}, false, true},
      {"partial line held", "250-a\r\n250 b", {}, false, false},
      {"partial reply held", "250-a\r\n", {}, false, false},
      {"non-digit code", "25x ok\r\n", {}, true, true},
      {"too short", "25\r\n", {}, true, true},
      {"text without code", "hello\r\n", {}, true, true},
      {"bad separator", "250_ok\r\n", {}, true, true},
      {"first digit 1", "199 x\r\n", {}, true, true},
      {"first digit 6", "600 x\r\n", {}, true, true},
      {"second digit 6", "260 x\r\n", {}, true, true},
      {"continuation with another code of the same class", "250-a\r\n251-b\r\n250 c\r\n",
       {"250-a\r\n250-b\r\n250 c\r\n"}, false, true},
      {"continuation with a code of another class", "250-a\r\n550 b\r\n", {}, true, true},
      {"replies before an error are kept", "250 ok\r\nxyz\r\n250 never\r\n", {"250 ok\r\n"}, true, true},
      {"empty line", "\r\n", {}, true, true},
  };
  for (const auto& c : cases) {
    INFO("case: " << std::string(c.name));
    ParseResult r = replay(c.input);
    CHECK(r.replies == c.replies);
    CHECK(r.failed == c.failed);
    CHECK(r.idle == c.idle);
  }
}

TEST_CASE("reply parser: caps") {
  SUBCASE("a line of kMaxReplyLine octets with its CRLF is accepted") {
    std::string text(ReplyParser::kMaxReplyLine - 6, 'x');
    std::string line = "250 " + text + "\r\n";
    REQUIRE(line.size() == ReplyParser::kMaxReplyLine);
    ReplyParser parser;
    std::vector<Reply> out;
    CHECK(parser.feed(line, out));
    REQUIRE(out.size() == 1);
    CHECK(out[0].lines.front() == text);
  }
  SUBCASE("one octet more is an error, detected before the LF arrives") {
    std::string line = "250 " + std::string(ReplyParser::kMaxReplyLine - 4, 'x');
    ReplyParser parser;
    std::vector<Reply> out;
    CHECK_FALSE(parser.feed(line, out));
    CHECK(parser.failed());
    CHECK(parser.error() == "reply line too long");
    CHECK(out.empty());
  }
  SUBCASE("an endless line fails without buffering it") {
    ReplyParser parser;
    std::vector<Reply> out;
    std::string chunk(1000, 'y');
    bool ok = parser.feed("250 ", out);
    for (int i = 0; i < 10 && ok; ++i) ok = parser.feed(chunk, out);
    CHECK_FALSE(ok);
  }
  SUBCASE("kMaxReplyLines lines are accepted, one more is an error") {
    std::string reply;
    for (std::size_t i = 1; i < ReplyParser::kMaxReplyLines; ++i) reply += "250-x\r\n";
    ReplyParser parser;
    std::vector<Reply> out;
    CHECK(parser.feed(reply + "250 last\r\n", out));
    REQUIRE(out.size() == 1);
    CHECK(out[0].lines.size() == ReplyParser::kMaxReplyLines);
    ReplyParser over;
    out.clear();
    CHECK_FALSE(over.feed(reply + "250-x\r\n250 last\r\n", out));
    CHECK(over.error() == "reply has too many lines");
    CHECK(out.empty());
  }
}

TEST_CASE("reply parser: errors stick until reset") {
  ReplyParser parser;
  std::vector<Reply> out;
  CHECK_FALSE(parser.feed("xyz\r\n", out));
  CHECK(parser.failed());
  CHECK_FALSE(parser.error().empty());
  CHECK_FALSE(parser.feed("250 ok\r\n", out));
  CHECK(out.empty());
  parser.reset();
  CHECK_FALSE(parser.failed());
  CHECK(parser.idle());
  CHECK(parser.feed("250 ok\r\n", out));
  REQUIRE(out.size() == 1);
  CHECK(out[0].code == 250);
  CHECK(out[0].lines == std::vector<std::string>{"ok"});
}

TEST_CASE("reply parser: reset drops a half reply") {
  ReplyParser parser;
  std::vector<Reply> out;
  CHECK(parser.feed("250-a\r\n250-b", out));
  CHECK_FALSE(parser.idle());
  parser.reset();
  CHECK(parser.idle());
  CHECK(parser.feed("221 bye\r\n", out));
  REQUIRE(out.size() == 1);
  CHECK(out[0].serialize() == "221 bye\r\n");
}
