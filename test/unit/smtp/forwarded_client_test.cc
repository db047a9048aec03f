// test/unit/smtp/forwarded_client_test.cc — the server side of XFORWARD (forwarded_client.h):
// tables of command sequences from a trusted peer with each reply and the identity they leave
// (Postfix's replies and its rules: 503 inside a transaction, all [UNAVAILABLE] at the first one,
// a refused command changing nothing, reset at the transaction's end); the Envelope form of the
// forwarded address; the XFORWARD line in dotgate's EHLO offer, and the MTA's never passed on.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/smtp/ehlo.h"
#include "lib/smtp/forwarded_client.h"

using dotgate::smtp::EhloOffer;
using dotgate::smtp::ForwardedClient;
using dotgate::smtp::kXforwardOffer;
using dotgate::smtp::parse_ehlo;
using dotgate::smtp::Reply;
using dotgate::smtp::rewrite_ehlo;

namespace {

struct Step {
  const char* arguments;  // after "XFORWARD "
  bool in_transaction;
  int code;
  const char* text;  // the reply's line, enhanced code first
};

struct Case {
  const char* name;
  std::vector<Step> steps;
  const char* client_address;  // after the last step
  const char* helo;
  const char* name_attr;  // NAME as stored ("" for not active)
};

const std::vector<Case> kCases = {
    {"Postfix's smtpd_proxy: two commands, as it sends them",
     {{"NAME=spike.porcupine.org ADDR=168.100.189.2 PORT=4711", false, 250, "2.0.0 Ok"},
      {"HELO=spike.porcupine.org IDENT=4Xyz PROTO=ESMTP SOURCE=REMOTE", false, 250, "2.0.0 Ok"}},
     "168.100.189.2:4711", "spike.porcupine.org", "spike.porcupine.org"},
    {"the first XFORWARD sets the rest to [UNAVAILABLE]: no port, no name, no HELO",
     {{"ADDR=192.0.2.7", false, 250, "2.0.0 Ok"}},
     "192.0.2.7", "", "[UNAVAILABLE]"},
    {"IPv6 with the IPV6: prefix, and a port",
     {{"ADDR=IPV6:2001:db8::1 PORT=25", false, 250, "2.0.0 Ok"}},
     "[2001:db8::1]:25", "", "[UNAVAILABLE]"},
    {"IPv6 without a port keeps its brackets",
     {{"ADDR=IPV6:2001:DB8::1", false, 250, "2.0.0 Ok"}},
     "[2001:db8::1]", "", "[UNAVAILABLE]"},
    {"inside a transaction: 503, nothing applied",
     {{"ADDR=192.0.2.7", true, 503, "5.5.1 Error: MAIL transaction in progress"}},
     "", "", ""},
    {"503 comes before the syntax, as in Postfix",
     {{"", true, 503, "5.5.1 Error: MAIL transaction in progress"}},
     "", "", ""},
    {"no attribute: 501 syntax",
     {{"", false, 501, "5.5.4 Syntax: XFORWARD attribute=value..."}},
     "", "", ""},
    {"a bad ADDR refuses the whole command: what came before it stays",
     {{"ADDR=192.0.2.7 HELO=a.example", false, 250, "2.0.0 Ok"},
      {"HELO=b.example ADDR=999.1.1.1", false, 501, "5.5.4 Bad XFORWARD ADDR syntax: 999.1.1.1"}},
     "192.0.2.7", "a.example", "[UNAVAILABLE]"},
    {"a refused first command leaves nothing forwarded",
     {{"COLOR=blue", false, 501, "5.5.4 Bad XFORWARD attribute name: COLOR"}},
     "", "", ""},
    {"later commands update what they name",
     {{"ADDR=192.0.2.7 PORT=1000", false, 250, "2.0.0 Ok"},
      {"ADDR=198.51.100.9", false, 250, "2.0.0 Ok"}},
     "198.51.100.9:1000", "", "[UNAVAILABLE]"},
    {"ADDR [UNAVAILABLE], any case: no address at all (not the peer's)",
     {{"ADDR=[unavailable] NAME=x.example HELO=x.example", false, 250, "2.0.0 Ok"}},
     "", "x.example", "x.example"},
    {"xtext values decoded, control characters masked",
     {{"ADDR=192.0.2.7 HELO=a+20b+0Dc", false, 250, "2.0.0 Ok"}},
     "192.0.2.7", "a?b?c", "[UNAVAILABLE]"},
    {"a port that is no port: 501",
     {{"ADDR=192.0.2.7 PORT=70000", false, 501, "5.5.4 Bad XFORWARD PORT syntax: 70000"}},
     "", "", ""},
};

}  // namespace

TEST_CASE("ForwardedClient: a table of XFORWARD sequences from a trusted peer") {
  for (const auto& c : kCases) {
    CAPTURE(c.name);
    ForwardedClient f;
    for (const auto& step : c.steps) {
      CAPTURE(step.arguments);
      Reply r = f.command(step.arguments, step.in_transaction);
      CHECK(r.code == step.code);
      REQUIRE(r.lines.size() == 1);
      CHECK(r.lines[0] == step.text);
    }
    CHECK(f.client_address() == c.client_address);
    CHECK(f.helo() == c.helo);
    bool active = std::string(c.name_attr) != "";
    CHECK(f.active() == active);
    if (active) {
      REQUIRE(f.attributes()->name);
      CHECK(*f.attributes()->name == c.name_attr);
      // Every attribute is set once active: the identity is never mixed with the peer's.
      const auto& a = *f.attributes();
      for (const auto* v : {&a.name, &a.addr, &a.port, &a.proto, &a.helo, &a.ident, &a.source}) CHECK(v->has_value());
    }
  }
}

TEST_CASE("ForwardedClient: reset ends what was forwarded; the next XFORWARD starts afresh") {
  ForwardedClient f;
  CHECK(f.command("ADDR=192.0.2.7 PORT=1000 HELO=a.example", false).code == 250);
  CHECK(f.active());
  f.reset();
  CHECK_FALSE(f.active());
  CHECK(f.client_address().empty());
  CHECK(f.helo().empty());
  // The next transaction's: its PORT is not the last one's.
  CHECK(f.command("ADDR=198.51.100.9", false).code == 250);
  CHECK(f.client_address() == "198.51.100.9");
  CHECK(f.helo().empty());
}

TEST_CASE("ForwardedClient: the attributes go on as XFORWARD in Postfix's order") {
  ForwardedClient f;
  CHECK(f.command("NAME=mail.example ADDR=192.0.2.7 PORT=4711 HELO=mail.example PROTO=ESMTP", false).code == 250);
  std::vector<std::string> announced = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"};
  auto lines = dotgate::smtp::build_xforward(*f.attributes(), announced);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] ==
        "XFORWARD NAME=mail.example ADDR=192.0.2.7 PORT=4711 HELO=mail.example IDENT=[UNAVAILABLE] PROTO=ESMTP "
        "SOURCE=[UNAVAILABLE]");
}

TEST_CASE("EHLO offer: XFORWARD announced to a trusted peer only, never the MTA's own line") {
  Reply mta{250, {"after-filter.example", "PIPELINING", "XFORWARD NAME ADDR PROTO HELO", "XCLIENT NAME ADDR", "8BITMIME"}};
  EhloOffer offer;
  Reply plain = rewrite_ehlo(mta, offer);
  for (const auto& line : plain.lines) {
    CHECK(line.rfind("XFORWARD", 0) != 0);
    CHECK(line.rfind("XCLIENT", 0) != 0);
  }
  offer.xforward = true;
  Reply trusted = rewrite_ehlo(mta, offer);
  std::size_t count = 0;
  for (const auto& line : trusted.lines) {
    if (line.rfind("XFORWARD", 0) == 0) {
      ++count;
      CHECK(line == kXforwardOffer);
    }
    CHECK(line.rfind("XCLIENT", 0) != 0);
  }
  CHECK(count == 1);
  // What a Postfix smtpd_proxy reads from it: every attribute it may send.
  auto caps = parse_ehlo(trusted);
  CHECK(caps.xforward);
  CHECK(caps.xforward_attributes == std::vector<std::string>{"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"});
}
