// test/unit/smtp/xclient_test.cc — xtext both ways; the exact XCLIENT/XFORWARD lines built from a
// client identity and the attributes an MTA announced (order, IPV6:, [UNAVAILABLE] for what the
// MTA would refuse, the 512-octet split at its exact boundary); parse_xforward's table of received
// commands and the identity (or the 501) each gives.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/smtp/ehlo.h"
#include "lib/smtp/xclient.h"

using namespace std::string_literals;
using dotgate::smtp::build_xclient;
using dotgate::smtp::build_xforward;
using dotgate::smtp::ClientIdentity;
using dotgate::smtp::kTempUnavailable;
using dotgate::smtp::kUnavailable;
using dotgate::smtp::merge_identity;
using dotgate::smtp::parse_ehlo;
using dotgate::smtp::parse_xforward;
using dotgate::smtp::Reply;
using dotgate::smtp::xtext_decode;
using dotgate::smtp::xtext_encode;

namespace {

const std::vector<std::string> kAllXclient = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT"};
const std::vector<std::string> kAllXforward = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"};

std::string describe(const ClientIdentity& c) {
  std::string s;
  auto add = [&](const char* name, const std::optional<std::string>& v) {
    if (v) s += std::string(s.empty() ? "" : " ") + name + "=" + *v;
  };
  add("name", c.name);
  add("addr", c.addr);
  add("port", c.port);
  add("proto", c.proto);
  add("helo", c.helo);
  add("login", c.login);
  add("destaddr", c.dest_addr);
  add("destport", c.dest_port);
  add("ident", c.ident);
  add("source", c.source);
  return s;
}

ClientIdentity internet_client() {
  ClientIdentity c;
  c.name = "mail.client.example";
  c.addr = "203.0.113.5";
  c.port = "41234";
  c.proto = "ESMTP";
  c.helo = "mail.client.example";
  c.login = "alice@client.example";
  c.dest_addr = "192.0.2.25";
  c.dest_port = "25";
  return c;
}

}  // namespace

TEST_CASE("xtext: encoding and decoding") {
  struct Case {
    std::string plain, xtext;
  };
  const std::vector<Case> cases = {
      {"", ""},
      {"mx.example.org", "mx.example.org"},
      {"a+b=c", "a+2Bb+3Dc"},
      {"two words", "two+20words"},
      {"tab\tcr\rlf\n", "tab+09cr+0Dlf+0A"},
      {"\x7f\x80\xff"s, "+7F+80+FF"},
      {"\0x"s, "+00x"},
      {"[UNAVAILABLE]", "[UNAVAILABLE]"},
      {"!~", "!~"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.xtext);
    CHECK(xtext_encode(c.plain) == c.xtext);
    CHECK(xtext_decode(c.xtext) == c.plain);
  }
  CHECK(xtext_decode("a+2bb") == "a+b");  // lower-case hex, as Postfix accepts
  for (const char* bad : {"+", "+2", "a+2", "+zz", "+2g", "a b", "caf\xc3\xa9", "x\ty"}) {
    CAPTURE(bad);
    CHECK_FALSE(xtext_decode(bad).has_value());
  }
  std::string every;
  for (int i = 0; i < 256; ++i) every += static_cast<char>(i);
  CHECK(xtext_decode(xtext_encode(every)) == every);
}

TEST_CASE("EHLO: the XCLIENT and XFORWARD attribute lists") {
  Reply r{250, {"mx.example.org", "PIPELINING", "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT",
                "xforward name addr  proto helo source name", "8BITMIME"}};
  auto caps = parse_ehlo(r);
  CHECK(caps.xclient);
  CHECK(caps.xclient_attributes ==
        std::vector<std::string>{"NAME", "ADDR", "PROTO", "HELO", "REVERSE_NAME", "PORT", "LOGIN", "DESTADDR", "DESTPORT"});
  CHECK(caps.xforward);
  CHECK(caps.xforward_attributes == std::vector<std::string>{"NAME", "ADDR", "PROTO", "HELO", "SOURCE"});
  auto bare = parse_ehlo(Reply{250, {"mx", "XCLIENT"}});
  CHECK(bare.xclient);
  CHECK(bare.xclient_attributes.empty());
  CHECK(build_xclient(internet_client(), bare.xclient_attributes).empty());  // nothing announced, nothing sent
}

TEST_CASE("build_xclient: a table of identities and what the MTA announced") {
  struct Case {
    const char* name;
    ClientIdentity who;
    std::vector<std::string> announced;
    std::vector<std::string> lines;
  };
  ClientIdentity v6 = internet_client();
  v6.addr = "2001:db8::5";
  v6.dest_addr = "2001:db8::25";
  ClientIdentity unknown_name = internet_client();
  unknown_name.name = std::string(kTempUnavailable);
  ClientIdentity no_name = internet_client();
  no_name.name.reset();
  no_name.login.reset();
  ClientIdentity refused = internet_client();
  refused.addr = "mail.client.example";
  refused.port = "99999";
  refused.proto = "LMTP";
  refused.name = "not a hostname!";
  refused.dest_addr = "[192.0.2.25]";
  ClientIdentity odd_helo = internet_client();
  odd_helo.helo = "a b+c=d";
  ClientIdentity huge_helo = internet_client();
  huge_helo.helo = std::string(100, ' ');  // 300 characters in xtext: over Postfix's 255
  const std::vector<Case> cases = {
      {"everything announced, one line, ADDR last", internet_client(), kAllXclient,
       {"XCLIENT HELO=mail.client.example PROTO=ESMTP LOGIN=alice@client.example DESTADDR=192.0.2.25 DESTPORT=25 "
        "PORT=41234 NAME=mail.client.example ADDR=203.0.113.5"}},
      {"only what the MTA announced (an older Postfix)", internet_client(), {"NAME", "ADDR", "PROTO", "HELO"},
       {"XCLIENT HELO=mail.client.example PROTO=ESMTP NAME=mail.client.example ADDR=203.0.113.5"}},
      {"announced names in any case", internet_client(), {"addr", "Port"}, {"XCLIENT PORT=41234 ADDR=203.0.113.5"}},
      {"IPv6 addresses get IPV6:", v6, {"ADDR", "DESTADDR"}, {"XCLIENT DESTADDR=IPV6:2001:db8::25 ADDR=IPV6:2001:db8::5"}},
      {"a temporary name failure", unknown_name, {"NAME", "ADDR"}, {"XCLIENT NAME=[TEMPUNAVAIL] ADDR=203.0.113.5"}},
      {"unknown attributes are not sent", no_name, {"NAME", "ADDR", "LOGIN"}, {"XCLIENT ADDR=203.0.113.5"}},
      {"what the MTA would refuse goes as [UNAVAILABLE]", refused, kAllXclient,
       {"XCLIENT HELO=mail.client.example PROTO=[UNAVAILABLE] LOGIN=alice@client.example DESTADDR=[UNAVAILABLE] "
        "DESTPORT=25 PORT=[UNAVAILABLE] NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE]"}},
      {"xtext in values", odd_helo, {"HELO"}, {"XCLIENT HELO=a+20b+2Bc+3Dd"}},
      {"a value over 255 in xtext", huge_helo, {"HELO", "ADDR"}, {"XCLIENT HELO=[UNAVAILABLE] ADDR=203.0.113.5"}},
      {"nothing announced", internet_client(), {}, {}},
      {"nothing known", ClientIdentity{}, kAllXclient, {}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(build_xclient(c.who, c.announced) == c.lines);
  }
}

TEST_CASE("build_xclient: split at 512 octets with the CRLF, exactly at the boundary") {
  ClientIdentity c;
  c.helo = std::string(255, 'h');
  c.addr = "192.0.2.1";
  // "XCLIENT HELO=<255>" is 268; " LOGIN=<220>" makes 495; " ADDR=192.0.2.1" makes 510: with CRLF 512.
  c.login = std::string(220, 'l');
  auto lines = build_xclient(c, kAllXclient);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].size() == 510);
  // One byte more and ADDR goes into a second command.
  c.login = std::string(221, 'l');
  lines = build_xclient(c, kAllXclient);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "XCLIENT HELO=" + std::string(255, 'h') + " LOGIN=" + std::string(221, 'l'));
  CHECK(lines[0].size() == 496);
  CHECK(lines[1] == "XCLIENT ADDR=192.0.2.1");
  // The longest identity there is: every attribute at its maximum; ADDR stays in the last line.
  ClientIdentity big;
  std::string host;
  for (int i = 0; i < 4; ++i) host += std::string(i ? "." : "") + std::string(62, 'a' + i);
  big.name = big.helo = host;  // 251 characters, a valid hostname
  big.login = std::string(255, 'x');
  big.addr = "2001:db8:1234:5678:9abc:def0:1234:5678";
  big.dest_addr = big.addr;
  big.port = big.dest_port = "65535";
  big.proto = "ESMTP";
  lines = build_xclient(big, kAllXclient);
  CHECK(lines.size() == 3);
  std::string all;
  for (const auto& l : lines) {
    CHECK(l.size() + 2 <= 512);
    CHECK(l.rfind("XCLIENT ", 0) == 0);
    all += l.substr(7);
  }
  CHECK(lines.back().find(" ADDR=IPV6:") != std::string::npos);
  // Split or not, the attributes keep their order: HELO PROTO LOGIN DESTADDR DESTPORT PORT NAME ADDR.
  std::size_t at = 0;
  for (const char* name : {" HELO=", " PROTO=", " LOGIN=", " DESTADDR=", " DESTPORT=", " PORT=", " NAME=", " ADDR="}) {
    std::size_t found = all.find(name, at);
    CHECK_MESSAGE(found != std::string::npos, name);
    at = found;
  }
  CHECK(all.find(" NAME=" + host + " ") != std::string::npos);
}

TEST_CASE("build_xforward: Postfix's order and its attribute set") {
  ClientIdentity c = internet_client();
  c.ident = "4XyZ=1";
  c.source = "REMOTE";
  CHECK(build_xforward(c, kAllXforward) ==
        std::vector<std::string>{"XFORWARD NAME=mail.client.example ADDR=203.0.113.5 PORT=41234 HELO=mail.client.example "
                                 "IDENT=4XyZ+3D1 PROTO=ESMTP SOURCE=REMOTE"});
  CHECK(build_xforward(c, {"NAME", "ADDR", "PROTO", "HELO"}) ==
        std::vector<std::string>{"XFORWARD NAME=mail.client.example ADDR=203.0.113.5 HELO=mail.client.example PROTO=ESMTP"});
  ClientIdentity u;
  u.name = std::string(kUnavailable);
  u.addr = "2001:db8::9";
  u.port = "x";
  CHECK(build_xforward(u, kAllXforward) == std::vector<std::string>{"XFORWARD NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::9 PORT=[UNAVAILABLE]"});
  // What parse_xforward reads back is what was sent.
  auto back = parse_xforward(build_xforward(c, kAllXforward)[0].substr(9));
  REQUIRE(back.ok());
  ClientIdentity expected = c;
  expected.login.reset();
  expected.dest_addr.reset();
  expected.dest_port.reset();
  CHECK(describe(back.attributes) == describe(expected));
}

TEST_CASE("parse_xforward: a table of received commands") {
  struct Case {
    std::string arguments;
    std::string identity;  // describe() of the attributes, or the 501 reply
  };
  const std::string long_value(256, 'a');
  const std::vector<Case> cases = {
      {"NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP", "name=spike.porcupine.org addr=168.100.189.2 proto=ESMTP"},
      {"HELO=spike.porcupine.org", "helo=spike.porcupine.org"},
      {"name=a.example   addr=192.0.2.1  ", "name=a.example addr=192.0.2.1"},
      {"ADDR=IPV6:2001:DB8::1", "addr=2001:db8::1"},
      {"ADDR=ipv6:::1", "addr=::1"},
      {"ADDR=2001:db8::0:1", "addr=2001:db8::1"},
      {"ADDR=[UNAVAILABLE] NAME=[unavailable]", "name=[UNAVAILABLE] addr=[UNAVAILABLE]"},
      {"NAME=[TempUnavail]", "name=[TEMPUNAVAIL]"},
      {"PORT=41234 SOURCE=remote", "port=41234 source=REMOTE"},
      {"PORT=[UNAVAILABLE] SOURCE=[UNAVAILABLE]", "port=[UNAVAILABLE] source=[UNAVAILABLE]"},
      {"IDENT=4XyZ+3D1", "ident=4XyZ=1"},
      {"HELO=two+20words", "helo=two?words"},
      {"HELO=caf+C3+A9", "helo=caf??"},
      {"HELO=cr+0D+0Alf", "helo=cr??lf"},
      {"HELO=a+zz", "helo=a+zz"},  // not xtext: taken raw (Postfix before 2.3)
      {"NAME=a.example NAME=b.example", "name=b.example"},
      {"PROTO=" + std::string(64, 'P'), "proto=" + std::string(64, 'P')},
      {"", "501 5.5.4 Syntax: XFORWARD attribute=value..."},
      {"   ", "501 5.5.4 Syntax: XFORWARD attribute=value..."},
      {"NAME", "501 5.5.4 Error: attribute=value expected"},
      {"NAME= ADDR=192.0.2.1", "501 5.5.4 Error: attribute=value expected"},
      {"COLOUR=red", "501 5.5.4 Bad XFORWARD attribute name: COLOUR"},
      {"LOGIN=alice", "501 5.5.4 Bad XFORWARD attribute name: LOGIN"},
      {"HELO=" + long_value, "501 5.5.4 Error: attribute value too long"},
      {"ADDR=not.an.ip", "501 5.5.4 Bad XFORWARD ADDR syntax: not.an.ip"},
      {"ADDR=[192.0.2.1]", "501 5.5.4 Bad XFORWARD ADDR syntax: [192.0.2.1]"},
      {"PORT=65536", "501 5.5.4 Bad XFORWARD PORT syntax: 65536"},
      {"PORT=-1", "501 5.5.4 Bad XFORWARD PORT syntax: -1"},
      {"PROTO=" + std::string(65, 'P'), "501 5.5.4 Bad XFORWARD PROTO syntax: " + std::string(65, 'P')},
      {"SOURCE=elsewhere", "501 5.5.4 Bad XFORWARD SOURCE syntax: elsewhere"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.arguments);
    auto p = parse_xforward(c.arguments);
    CHECK((p.ok() ? describe(p.attributes) : p.error) == c.identity);
  }
}

TEST_CASE("merge_identity: XFORWARD attributes accumulate, later ones win") {
  ClientIdentity into;
  merge_identity(parse_xforward("NAME=a.example ADDR=192.0.2.1").attributes, into);
  merge_identity(parse_xforward("HELO=h.example ADDR=192.0.2.2").attributes, into);
  CHECK(describe(into) == "name=a.example addr=192.0.2.2 helo=h.example");
}
