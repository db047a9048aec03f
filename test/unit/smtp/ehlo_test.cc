// test/unit/smtp/ehlo_test.cc — parse_ehlo (what the downstream offers) and rewrite_ehlo (the exact
// list the client sees, in its fixed order).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/smtp/ehlo.h"

using dotgate::smtp::EhloCapabilities;
using dotgate::smtp::EhloOffer;
using dotgate::smtp::parse_ehlo;
using dotgate::smtp::Reply;
using dotgate::smtp::rewrite_ehlo;

namespace {

// A typical Postfix answer, with everything dotgate must drop mixed in.
Reply postfix_ehlo() {
  return Reply{250,
               {"mx.example.org", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
                "AUTH PLAIN LOGIN", "AUTH=PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
                "SMTPUTF8", "CHUNKING", "BINARYMIME", "XCLIENT NAME ADDR PROTO HELO",
                "XFORWARD NAME ADDR PROTO HELO SOURCE", "X-UNKNOWN-THING", "PRDR"}};
}

}  // namespace

TEST_CASE("parse_ehlo: every keyword dotgate knows") {
  EhloCapabilities caps = parse_ehlo(postfix_ehlo());
  CHECK(caps.pipelining);
  CHECK(caps.size);
  CHECK(caps.size_limit == 10240000);
  CHECK(caps.eightbitmime);
  CHECK(caps.smtputf8);
  CHECK(caps.enhancedstatuscodes);
  CHECK(caps.dsn);
  CHECK(caps.starttls);
  CHECK(caps.chunking);
  CHECK(caps.prdr);
  CHECK(caps.xclient);
  CHECK(caps.xforward);
  CHECK(caps.auth_mechanisms == std::vector<std::string>{"PLAIN", "LOGIN"});
}

TEST_CASE("parse_ehlo: the first line is the name, not a keyword; case-insensitive keywords") {
  EhloCapabilities caps = parse_ehlo(Reply{250, {"PIPELINING", "size", "8bitmime", "auth=cram-md5"}});
  CHECK_FALSE(caps.pipelining);
  CHECK(caps.size);
  CHECK(caps.size_limit == 0);
  CHECK(caps.eightbitmime);
  CHECK(caps.auth_mechanisms == std::vector<std::string>{"CRAM-MD5"});
  CHECK_FALSE(caps.smtputf8);
  CHECK_FALSE(caps.starttls);

  EhloCapabilities none = parse_ehlo(Reply{250, {"mx"}});
  CHECK_FALSE(none.size);
  CHECK(none.auth_mechanisms.empty());
  CHECK(parse_ehlo(Reply{250, {"mx", "SIZE abc"}}).size_limit == 0);
  CHECK(parse_ehlo(Reply{250, {"mx", "SIZE 99999999999999999999999"}}).size_limit == 0);
}

TEST_CASE("rewrite_ehlo: drops what dotgate cannot relay, fixed order") {
  Reply out = rewrite_ehlo(postfix_ehlo(), EhloOffer{});
  CHECK(out.code == 250);
  CHECK(out.serialize() ==
        "250-mx.example.org\r\n"
        "250-PIPELINING\r\n"
        "250-SIZE 10240000\r\n"
        "250-8BITMIME\r\n"
        "250-SMTPUTF8\r\n"
        "250-DSN\r\n"
        "250 ENHANCEDSTATUSCODES\r\n");
}

TEST_CASE("rewrite_ehlo: AUTH passthrough and PRDR") {
  EhloOffer offer;
  offer.auth_passthrough = true;
  offer.prdr = true;
  Reply out = rewrite_ehlo(postfix_ehlo(), offer);
  CHECK(out.lines == std::vector<std::string>{"mx.example.org", "PIPELINING", "SIZE 10240000", "8BITMIME",
                                              "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN",
                                              "AUTH=PLAIN LOGIN", "PRDR"});
  // AUTH passthrough keeps nothing when the downstream offered no AUTH.
  Reply bare = rewrite_ehlo(Reply{250, {"mx", "PRDR"}}, offer);
  CHECK(bare.lines == std::vector<std::string>{"mx", "PIPELINING", "ENHANCEDSTATUSCODES", "PRDR"});
}

TEST_CASE("rewrite_ehlo: minimal downstream still gets PIPELINING and ENHANCEDSTATUSCODES") {
  CHECK(rewrite_ehlo(Reply{250, {"mx"}}, EhloOffer{}).serialize() ==
        "250-mx\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
  // The downstream's PRDR is not announced unless dotgate offers it itself.
  CHECK(rewrite_ehlo(Reply{250, {"mx", "PRDR"}}, EhloOffer{}).lines ==
        std::vector<std::string>{"mx", "PIPELINING", "ENHANCEDSTATUSCODES"});
}

TEST_CASE("rewrite_ehlo: SIZE") {
  auto size_line = [](std::vector<std::string> downstream_lines, std::uint64_t ours) {
    downstream_lines.insert(downstream_lines.begin(), "mx");
    EhloOffer offer;
    offer.max_message_size = ours;
    Reply out = rewrite_ehlo(Reply{250, downstream_lines}, offer);
    for (const auto& line : out.lines) {
      if (line.rfind("SIZE", 0) == 0) return line;
    }
    return std::string("(none)");
  };
  CHECK(size_line({"SIZE 1000"}, 0) == "SIZE 1000");
  CHECK(size_line({"SIZE 1000"}, 500) == "SIZE 500");
  CHECK(size_line({"SIZE 1000"}, 5000) == "SIZE 1000");
  CHECK(size_line({}, 5000) == "SIZE 5000");
  CHECK(size_line({}, 0) == "(none)");
  CHECK(size_line({"SIZE"}, 5000) == "SIZE 5000");
  CHECK(size_line({"SIZE 0"}, 5000) == "SIZE 5000");
  CHECK(size_line({"SIZE"}, 0) == "SIZE");
  CHECK(size_line({"SIZE 0"}, 0) == "SIZE");
}
