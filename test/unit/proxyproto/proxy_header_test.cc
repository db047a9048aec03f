// test/unit/proxyproto/proxy_header_test.cc — ProxyHeaderParser: a table of PROXY v1/v2 inputs
// (valid, each malformation the spec forbids, the length caps) and the exact outcome of each,
// replayed at every split point, every pair of split points for short inputs, and byte by byte.
// The outcome includes the bytes left for SMTP after the header: `consumed` must be exact.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "lib/proxyproto/proxy_header.h"

using namespace std::string_literals;
using dotgate::proxyproto::Command;
using dotgate::proxyproto::Family;
using dotgate::proxyproto::Header;
using dotgate::proxyproto::kMaxV2Payload;
using dotgate::proxyproto::ProxyHeaderParser;
using dotgate::proxyproto::Result;
using dotgate::proxyproto::Version;

namespace {

const std::string kSig = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"s;

std::string be16(std::size_t n) { return {static_cast<char>((n >> 8) & 0xff), static_cast<char>(n & 0xff)}; }

std::string v2(unsigned char ver_cmd, unsigned char fam, const std::string& payload) {
  return kSig + static_cast<char>(ver_cmd) + static_cast<char>(fam) + be16(payload.size()) + payload;
}

std::string tlv(unsigned char type, const std::string& value) { return static_cast<char>(type) + be16(value.size()) + value; }

const std::string kV4Block = "\xC0\x00\x02\x01" "\xC6\x33\x64\x02" "\x16\x2E" "\x00\x19"s;  // 192.0.2.1:5678 -> 198.51.100.2:25
const std::string kV6Block = "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                             "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"
                             "\xff\xff" "\x00\x19"s;  // [2001:db8::1]:65535 -> [2001:db8::2]:25

std::string describe(const Header& h) {
  std::string s = h.version == Version::V1 ? "v1" : "v2";
  s += h.command == Command::Local ? " LOCAL" : " PROXY";
  if (h.use_connection_addresses()) {
    s += " (connection addresses)";
  } else {
    s += " " + h.source.ip() + " " + std::to_string(h.source.port) + " -> " + h.destination.ip() + " " +
         std::to_string(h.destination.port);
  }
  s += " len=" + std::to_string(h.length) + " tlvs=" + std::to_string(h.tlv_count);
  return s;
}

// Feeds `input` in the chunks the cuts make; the outcome and what is left for SMTP.
std::string run(std::string_view input, const std::vector<std::size_t>& cuts) {
  ProxyHeaderParser parser;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  std::size_t start = 0;
  std::string outcome = "MORE", rest;
  bool done = false;
  for (std::size_t end : ends) {
    std::string_view chunk = input.substr(start, end - start);
    start = end;
    Result r = parser.feed(chunk);
    REQUIRE(r.consumed <= chunk.size());
    if (done) {
      CHECK(r.kind == Result::Kind::Done);  // sticks, consumes nothing more
      CHECK(r.consumed == 0);
      rest += chunk;
      continue;
    }
    if (r.kind == Result::Kind::Error) {
      CHECK(r.consumed == 0);
      CHECK(parser.feed("x").kind == Result::Kind::Error);  // sticks
      return "ERROR " + std::string(r.error);
    }
    if (r.kind == Result::Kind::Done) {
      done = true;
      outcome = "DONE " + describe(r.header);
      rest += chunk.substr(r.consumed);
    } else {
      CHECK(r.consumed == chunk.size());
    }
  }
  return done ? outcome + " rest=" + rest : outcome;
}

std::string replay(const std::string& input) {
  std::string whole = run(input, {});
  for (std::size_t i = 0; i <= input.size(); ++i) {
    if (run(input, {i}) != whole) FAIL_CHECK("split at " << i << " differs: " << run(input, {i}));
  }
  if (input.size() <= 80) {
    for (std::size_t i = 0; i <= input.size(); ++i)
      for (std::size_t j = i; j <= input.size(); ++j)
        if (run(input, {i, j}) != whole) FAIL_CHECK("split at " << i << "," << j);
  }
  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < input.size(); ++i) bytewise.push_back(i);
  CHECK(run(input, bytewise) == whole);
  return whole;
}

struct Case {
  const char* name;
  std::string input;
  std::string outcome;
};

}  // namespace

TEST_CASE("PROXY v1: table replayed at every split point") {
  const std::string ipv6_max(39, 'f');
  const std::vector<Case> cases = {
      {"TCP4, SMTP after it", "PROXY TCP4 192.0.2.1 198.51.100.2 5678 25\r\nEHLO x\r\n",
       "DONE v1 PROXY 192.0.2.1 5678 -> 198.51.100.2 25 len=43 tlvs=0 rest=EHLO x\r\n"},
      {"TCP6", "PROXY TCP6 2001:db8::1 2001:DB8::2 65535 0\r\n",
       "DONE v1 PROXY 2001:db8::1 65535 -> 2001:db8::2 0 len=44 tlvs=0 rest="},
      {"UNKNOWN short form", "PROXY UNKNOWN\r\nQUIT\r\n", "DONE v1 PROXY (connection addresses) len=15 tlvs=0 rest=QUIT\r\n"},
      {"UNKNOWN ignores the rest of its line", "PROXY UNKNOWN whatever here 1 2\r\n",
       "DONE v1 PROXY (connection addresses) len=33 tlvs=0 rest="},
      {"the 107-byte worst case is accepted",
       "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
       "DONE v1 PROXY (connection addresses) len=107 tlvs=0 rest="},
      {"108 bytes without CRLF", "PROXY UNKNOWN " + std::string(94, 'a') + "\r\n",
       "ERROR v1 line without CRLF in its first 107 bytes"},
      {"incomplete", "PROXY TCP4 192.0.2.1 198.51.100.2 5678 25\r", "MORE"},
      {"not PROXY: SMTP straight away", "EHLO client\r\n", "ERROR not a PROXY protocol header"},
      {"not PROXY: lower case", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "ERROR not a PROXY protocol header"},
      {"not PROXY: no space", "PROXYTCP4 1.2.3.4\r\n", "ERROR not a PROXY protocol header"},
      {"bare LF", "PROXY TCP4 192.0.2.1 198.51.100.2 5678 25\n", "ERROR v1 line ends with a bare LF"},
      {"bare CR inside", "PROXY TCP4 192.0.2.1\r198.51.100.2 5678 25\r\n", "ERROR v1 line holds a bare CR"},
      {"TCP5", "PROXY TCP5 192.0.2.1 198.51.100.2 5678 25\r\n", "ERROR v1 protocol is not TCP4, TCP6 or UNKNOWN"},
      {"two spaces", "PROXY TCP4 192.0.2.1  198.51.100.2 5678 25\r\n",
       "ERROR v1 line does not have exactly 5 fields after PROXY"},
      {"trailing space", "PROXY TCP4 192.0.2.1 198.51.100.2 5678 25 \r\n",
       "ERROR v1 line does not have exactly 5 fields after PROXY"},
      {"missing port", "PROXY TCP4 192.0.2.1 198.51.100.2 5678\r\n",
       "ERROR v1 line does not have exactly 5 fields after PROXY"},
      {"leading zero in an address", "PROXY TCP4 192.0.2.01 198.51.100.2 5678 25\r\n", "ERROR bad v1 source address"},
      {"octet over 255", "PROXY TCP4 192.0.2.1 198.51.100.256 5678 25\r\n", "ERROR bad v1 destination address"},
      {"three octets", "PROXY TCP4 192.0.2 198.51.100.2 5678 25\r\n", "ERROR bad v1 source address"},
      {"five octets", "PROXY TCP4 192.0.2.1.5 198.51.100.2 5678 25\r\n", "ERROR bad v1 source address"},
      {"IPv6 under TCP4", "PROXY TCP4 2001:db8::1 198.51.100.2 5678 25\r\n", "ERROR bad v1 source address"},
      {"IPv4 under TCP6", "PROXY TCP6 192.0.2.1 2001:db8::2 5678 25\r\n", "ERROR bad v1 source address"},
      {"IPv6 too long", "PROXY TCP6 " + ipv6_max + " ::1 1 2\r\n", "ERROR bad v1 source address"},
      {"leading zero in a port", "PROXY TCP4 192.0.2.1 198.51.100.2 05678 25\r\n", "ERROR bad v1 source port"},
      {"port over 65535", "PROXY TCP4 192.0.2.1 198.51.100.2 5678 65536\r\n", "ERROR bad v1 destination port"},
      {"signed port", "PROXY TCP4 192.0.2.1 198.51.100.2 +5678 25\r\n", "ERROR bad v1 source port"},
      {"NUL in the line", "PROXY TCP4 192.0.2.1\0 198.51.100.2 5678 25\r\n"s, "ERROR bad v1 source address"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(replay(c.input) == c.outcome);
  }
}

TEST_CASE("PROXY v2: table replayed at every split point") {
  std::string big_tlv(kMaxV2Payload - kV4Block.size() - 3, 'z');
  const std::vector<Case> cases = {
      {"TCP over IPv4, SMTP after it", v2(0x21, 0x11, kV4Block) + "QUIT\r\n",
       "DONE v2 PROXY 192.0.2.1 5678 -> 198.51.100.2 25 len=28 tlvs=0 rest=QUIT\r\n"},
      {"TCP over IPv6", v2(0x21, 0x21, kV6Block), "DONE v2 PROXY 2001:db8::1 65535 -> 2001:db8::2 25 len=52 tlvs=0 rest="},
      {"TLVs skipped (ALPN, SSL with sub-TLVs, NOOP of 0 bytes, custom)",
       v2(0x21, 0x11, kV4Block + tlv(0x01, "smtp") + tlv(0x20, "\x01\x00\x00\x00\x00"s + tlv(0x21, "TLSv1.3")) +
                          tlv(0x04, "") + tlv(0xE0, "vpce-0123")),
       "DONE v2 PROXY 192.0.2.1 5678 -> 198.51.100.2 25 len=68 tlvs=4 rest="},
      {"the length cap itself is accepted", v2(0x21, 0x11, kV4Block + tlv(0xEA, big_tlv)),
       "DONE v2 PROXY 192.0.2.1 5678 -> 198.51.100.2 25 len=2064 tlvs=1 rest="},
      {"over the length cap: refused at the length field", kSig + "\x21\x11"s + be16(kMaxV2Payload + 1),
       "ERROR v2 header longer than 2048 bytes"},
      {"LOCAL (health check), addresses ignored", v2(0x20, 0x11, kV4Block) + "EHLO lb\r\n",
       "DONE v2 LOCAL (connection addresses) len=28 tlvs=0 rest=EHLO lb\r\n"},
      {"LOCAL with no address block", v2(0x20, 0x00, ""), "DONE v2 LOCAL (connection addresses) len=16 tlvs=0 rest="},
      {"PROXY with AF_UNSPEC", v2(0x21, 0x00, "ignored"), "DONE v2 PROXY (connection addresses) len=23 tlvs=0 rest="},
      {"UDP over IPv4 falls back to the connection", v2(0x21, 0x12, kV4Block),
       "DONE v2 PROXY (connection addresses) len=28 tlvs=0 rest="},
      {"AF_UNIX falls back to the connection", v2(0x21, 0x31, std::string(216, '\0') + tlv(0x05, "id")),
       "DONE v2 PROXY (connection addresses) len=237 tlvs=1 rest="},
      {"incomplete fixed part", kSig + "\x21"s, "MORE"},
      {"incomplete address block", v2(0x21, 0x11, kV4Block).substr(0, 20), "MORE"},
      {"signature wrong at its 5th byte", "\x0D\x0A\x0D\x0A\x01"s, "ERROR not a PROXY protocol header"},
      {"signature wrong at its last byte", kSig.substr(0, 11) + "\x0D", "ERROR not a PROXY protocol header"},
      {"version 1 in the binary form", v2(0x11, 0x11, kV4Block), "ERROR v2 version is not 2"},
      {"command 2", v2(0x22, 0x11, kV4Block), "ERROR v2 command is neither LOCAL nor PROXY"},
      {"family 4", v2(0x21, 0x41, kV4Block), "ERROR v2 family or protocol unassigned"},
      {"protocol 3", v2(0x21, 0x13, kV4Block), "ERROR v2 family or protocol unassigned"},
      {"IPv4 block too short", v2(0x21, 0x11, kV4Block.substr(0, 11)), "ERROR v2 length shorter than its address block"},
      {"IPv6 block too short", v2(0x21, 0x21, kV4Block), "ERROR v2 length shorter than its address block"},
      {"TLV header truncated", v2(0x21, 0x11, kV4Block + "\x01\x00"s), "ERROR v2 TLV truncated"},
      {"TLV value overruns the header", v2(0x21, 0x11, kV4Block + "\x01\x00\x05" "abc"s), "ERROR v2 TLV longer than the header"},
      {"first byte neither P nor CR", "\x16\x03\x01\x02\x00"s, "ERROR not a PROXY protocol header"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(replay(c.input) == c.outcome);
  }
}

TEST_CASE("PROXY header: the parser buffers at most one header, and reset() starts over") {
  ProxyHeaderParser parser;
  // A v1 sender that never ends its line is cut off at 107 bytes, however much it sends.
  std::string endless(100000, 'a');
  endless.replace(0, 14, "PROXY UNKNOWN ");
  Result r = parser.feed(endless);
  CHECK(r.kind == Result::Kind::Error);
  parser.reset();
  r = parser.feed("PROXY TCP4 192.0.2.1 198.51.100.2 5678 25\r\n");
  REQUIRE(r.kind == Result::Kind::Done);
  CHECK(r.header.source.ip() == "192.0.2.1");
  CHECK(r.header.family == Family::Inet);
  CHECK(r.consumed == 43);
  // Empty chunks are harmless before and after.
  parser.reset();
  CHECK(parser.feed("").kind == Result::Kind::NeedMore);
  CHECK(parser.feed("").consumed == 0);
}

TEST_CASE("PROXY header: too_long marks the size caps, and only them") {
  struct Case {
    std::string name, input;
    bool too_long;
  };
  const std::vector<Case> cases = {
      {"v1 past 107 bytes", "PROXY UNKNOWN " + std::string(94, 'a') + "\r\n", true},
      {"v2 announcing more than 2048", v2(0x21, 0x11, std::string(kMaxV2Payload + 1, '\0')), true},
      {"v1 bad port", "PROXY TCP4 192.0.2.1 198.51.100.2 05678 25\r\n", false},
      {"not a header", "EHLO x\r\n", false},
      {"v2 bad version", v2(0x31, 0x11, kV4Block), false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    ProxyHeaderParser parser;
    Result r = parser.feed(c.input);
    REQUIRE(r.kind == Result::Kind::Error);
    CHECK(r.too_long == c.too_long);
    CHECK(parser.feed("x").too_long == c.too_long);  // the error sticks whole
  }
}
