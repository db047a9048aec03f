// test/unit/proxyproto/proxy_addresses_test.cc — endpoint_text and ends_after: the text a header's
// addresses become (the form TcpConnection::peer_name() gives), and when the connection's own
// ends stand instead (LOCAL, UNKNOWN, UDP, AF_UNIX). Headers come from the real parser.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/proxyproto/proxy_addresses.h"
#include "lib/proxyproto/proxy_header.h"

using namespace std::string_literals;
using dotgate::proxyproto::Address;
using dotgate::proxyproto::ConnectionEnds;
using dotgate::proxyproto::endpoint_text;
using dotgate::proxyproto::ends_after;
using dotgate::proxyproto::Family;
using dotgate::proxyproto::Header;
using dotgate::proxyproto::ProxyHeaderParser;
using dotgate::proxyproto::Result;

namespace {

const std::string kSig = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"s;

std::string v2(unsigned char ver_cmd, unsigned char fam, const std::string& payload) {
  return kSig + static_cast<char>(ver_cmd) + static_cast<char>(fam) + static_cast<char>(payload.size() >> 8) +
         static_cast<char>(payload.size() & 0xff) + payload;
}

Header parse(const std::string& input) {
  ProxyHeaderParser parser;
  Result r = parser.feed(input);
  REQUIRE(r.kind == Result::Kind::Done);
  return r.header;
}

}  // namespace

TEST_CASE("proxy addresses: endpoint_text prints as peer_name() does") {
  Address a;
  CHECK(endpoint_text(a).empty());  // Unspec
  a.family = Family::Inet;
  a.bytes = {192, 0, 2, 1};
  a.port = 4321;
  CHECK(endpoint_text(a) == "192.0.2.1:4321");
  a.port = 0;
  CHECK(endpoint_text(a) == "192.0.2.1:0");
  Address b;
  b.family = Family::Inet6;
  b.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  b.port = 65535;
  CHECK(endpoint_text(b) == "[2001:db8::1]:65535");
  Address mapped;  // an IPv4 client seen by a dual-stack balancer: kept as it came
  mapped.family = Family::Inet6;
  mapped.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5};
  mapped.port = 25;
  CHECK(endpoint_text(mapped) == "[::ffff:203.0.113.5]:25");
}

TEST_CASE("proxy addresses: whose ends the session uses after each kind of header") {
  const ConnectionEnds conn{"10.0.0.5:40000", "10.0.0.9:2525"};
  struct Case {
    std::string name, header;
    ConnectionEnds expected;
  };
  const std::string v4_block = "\xC0\x00\x02\x01" "\xC6\x33\x64\x02" "\x16\x2E" "\x00\x19"s;
  const std::string v6_block = "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                               "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
                               "\x04\xd2" "\x00\x19"s;
  const std::vector<Case> cases = {
      {"v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 5678 25\r\n", {"192.0.2.1:5678", "198.51.100.2:25"}},
      {"v1 TCP6", "PROXY TCP6 2001:db8::1 2001:db8::2 1234 25\r\n", {"[2001:db8::1]:1234", "[2001:db8::2]:25"}},
      {"v1 UNKNOWN", "PROXY UNKNOWN\r\n", conn},
      {"v1 UNKNOWN with addresses (ignored)", "PROXY UNKNOWN 192.0.2.1 198.51.100.2 5678 25\r\n", conn},
      {"v2 PROXY TCP4", v2(0x21, 0x11, v4_block), {"192.0.2.1:5678", "198.51.100.2:25"}},
      {"v2 PROXY TCP6", v2(0x21, 0x21, v6_block), {"[2001:db8::1]:1234", "[2001:db8::2]:25"}},
      {"v2 LOCAL (a health check) with an address block", v2(0x20, 0x11, v4_block), conn},
      {"v2 LOCAL, AF_UNSPEC", v2(0x20, 0x00, ""), conn},
      {"v2 PROXY AF_UNSPEC", v2(0x21, 0x00, ""), conn},
      {"v2 PROXY UDP4", v2(0x21, 0x12, v4_block), conn},
      {"v2 PROXY AF_UNIX stream", v2(0x21, 0x31, std::string(216, 'x')), conn},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    ConnectionEnds got = ends_after(parse(c.header), conn);
    CHECK(got.peer == c.expected.peer);
    CHECK(got.local == c.expected.local);
  }
}
