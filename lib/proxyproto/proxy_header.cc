// lib/proxyproto/proxy_header.cc — ProxyHeaderParser: the PROXY v1 line and the v2 binary block.
//
// Written from haproxy's doc/proxy-protocol.txt (2020/03/05). The first byte decides the
// version ('P' for v1, CR for v2's signature); anything else is no PROXY header at all. Bytes are
// checked as they arrive wherever a prefix can already be wrong (the signature, "PROXY ", v2's
// version, command, family and length), so a stranger is refused at its first wrong byte rather
// than after a full header's worth of waiting; the addresses are read only once the whole header
// is there, as the spec requires. Strictness follows the spec: exactly one space between v1
// fields, no leading zeroes in v1 numbers, CRLF and never a bare CR or LF, v2 length fields that
// add up. Owns its buffer only; see proxy_header.h for the contract.
#include "lib/proxyproto/proxy_header.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace dotgate::proxyproto {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature{"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12};

std::uint8_t byte_at(const std::string& s, std::size_t i) { return static_cast<std::uint8_t>(s[i]); }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A v1 decimal number: 1 to `max_digits` digits, no leading zero (the spec: no confusion with
// octal), at most `max`.
bool parse_decimal(std::string_view s, std::size_t max_digits, unsigned max, unsigned& out) {
  if (s.empty() || s.size() > max_digits || !std::all_of(s.begin(), s.end(), is_digit)) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  unsigned n = 0;
  for (char c : s) n = n * 10 + static_cast<unsigned>(c - '0');
  if (n > max) return false;
  out = n;
  return true;
}

// Exactly four dot-separated decimals 0..255 (not inet_pton: its leniencies vary by libc).
bool parse_ipv4(std::string_view s, Address& out) {
  std::size_t part = 0;
  while (true) {
    std::size_t dot = s.find('.');
    unsigned n = 0;
    if (part == 4 || !parse_decimal(s.substr(0, dot), 3, 255, n)) return false;
    out.bytes[part++] = static_cast<std::uint8_t>(n);
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  if (part != 4) return false;
  out.family = Family::Inet;
  return true;
}

bool parse_ipv6(std::string_view s, Address& out) {
  char text[INET6_ADDRSTRLEN];
  if (s.empty() || s.size() >= sizeof text) return false;
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = '\0';
  if (inet_pton(AF_INET6, text, out.bytes.data()) != 1) return false;
  out.family = Family::Inet6;
  return true;
}

std::vector<std::string_view> split_spaces(std::string_view s) {
  std::vector<std::string_view> parts;
  while (true) {
    std::size_t sp = s.find(' ');
    parts.push_back(s.substr(0, sp));
    if (sp == std::string_view::npos) return parts;
    s.remove_prefix(sp + 1);
  }
}

std::uint16_t be16(const std::string& s, std::size_t at) {
  return static_cast<std::uint16_t>((byte_at(s, at) << 8) | byte_at(s, at + 1));
}

}  // namespace

std::string Address::ip() const {
  char text[INET6_ADDRSTRLEN];
  int af = family == Family::Inet ? AF_INET : AF_INET6;
  if (family == Family::Unspec || !inet_ntop(af, bytes.data(), text, sizeof text)) return {};
  return text;
}

void ProxyHeaderParser::reset() {
  buffer_.clear();
  sticky_ = Result{};
  ended_ = false;
}

Result ProxyHeaderParser::fail(std::string_view reason, bool too_long) {
  ended_ = true;
  sticky_ = Result{};
  sticky_.kind = Result::Kind::Error;
  sticky_.error = reason;
  sticky_.too_long = too_long;
  buffer_.clear();
  return sticky_;
}

Result ProxyHeaderParser::feed(std::string_view chunk) {
  if (ended_) {
    Result again = sticky_;
    again.consumed = 0;
    return again;
  }
  std::size_t used = 0;
  while (used < chunk.size()) {
    std::string_view rest = chunk.substr(used);
    char first = buffer_.empty() ? rest[0] : buffer_[0];
    if (first != 'P' && first != '\r') return fail("not a PROXY protocol header");

    if (first == 'P') {
      // v1: up to the first LF, within kMaxV1Line bytes.
      std::size_t room = kMaxV1Line - buffer_.size();
      std::string_view window = rest.substr(0, room);
      std::size_t lf = window.find('\n');
      std::size_t take = lf == std::string_view::npos ? window.size() : lf;
      std::size_t checked = buffer_.size();
      buffer_.append(window.substr(0, take));
      std::size_t prefix = std::min(buffer_.size(), kV1Prefix.size());
      if (checked < prefix && buffer_.compare(0, prefix, kV1Prefix.substr(0, prefix)) != 0)
        return fail("not a PROXY protocol header");
      if (lf != std::string_view::npos) {
        Result r = finish_v1();
        if (r.kind == Result::Kind::Done) r.consumed = used + lf + 1;
        return r;
      }
      used += take;
      if (buffer_.size() >= kMaxV1Line) return fail("v1 line without CRLF in its first 107 bytes", true);
      continue;
    }

    // v2: the fixed part first, checked as it comes, then the announced length.
    std::size_t want = kV2FixedPart;
    if (buffer_.size() >= kV2FixedPart) want += be16(buffer_, 14);
    std::size_t take = std::min(rest.size(), want - buffer_.size());
    std::size_t checked = buffer_.size();
    buffer_.append(rest.substr(0, take));
    used += take;
    if (checked < kV2FixedPart) {
      std::size_t sig = std::min(buffer_.size(), kV2Signature.size());
      if (buffer_.compare(0, sig, kV2Signature.substr(0, sig)) != 0) return fail("not a PROXY protocol header");
      if (buffer_.size() > 12 && (byte_at(buffer_, 12) >> 4) != 2) return fail("v2 version is not 2");
      if (buffer_.size() > 12 && (byte_at(buffer_, 12) & 0x0F) > 1) return fail("v2 command is neither LOCAL nor PROXY");
      if (buffer_.size() > 13 && ((byte_at(buffer_, 13) >> 4) > 3 || (byte_at(buffer_, 13) & 0x0F) > 2))
        return fail("v2 family or protocol unassigned");
      if (buffer_.size() == kV2FixedPart && be16(buffer_, 14) > kMaxV2Payload)
        return fail("v2 header longer than 2048 bytes", true);
    }
    if (buffer_.size() >= kV2FixedPart && buffer_.size() == kV2FixedPart + be16(buffer_, 14)) {
      Result r = finish_v2();
      if (r.kind == Result::Kind::Done) r.consumed = used;
      return r;
    }
  }
  Result more;
  more.consumed = chunk.size();
  return more;
}

Result ProxyHeaderParser::finish_v1() {
  std::string_view line = buffer_;  // without its LF
  if (line.empty() || line.back() != '\r') return fail("v1 line ends with a bare LF");
  line.remove_suffix(1);
  if (line.find('\r') != std::string_view::npos) return fail("v1 line holds a bare CR");
  Header h;
  h.version = Version::V1;
  h.length = buffer_.size() + 1;
  std::string_view fields = line.substr(kV1Prefix.size());
  std::string_view proto = fields.substr(0, fields.find(' '));
  if (proto == "UNKNOWN") {
    // The spec: whatever follows UNKNOWN up to the CRLF is to be ignored.
    h.family = Family::Unspec;
  } else if (proto == "TCP4" || proto == "TCP6") {
    auto parts = split_spaces(fields);
    if (parts.size() != 5) return fail("v1 line does not have exactly 5 fields after PROXY");
    bool v4 = proto == "TCP4";
    auto parse_ip = v4 ? parse_ipv4 : parse_ipv6;
    if (!parse_ip(parts[1], h.source)) return fail("bad v1 source address");
    if (!parse_ip(parts[2], h.destination)) return fail("bad v1 destination address");
    unsigned sport = 0, dport = 0;
    if (!parse_decimal(parts[3], 5, 65535, sport)) return fail("bad v1 source port");
    if (!parse_decimal(parts[4], 5, 65535, dport)) return fail("bad v1 destination port");
    h.source.port = static_cast<std::uint16_t>(sport);
    h.destination.port = static_cast<std::uint16_t>(dport);
    h.family = v4 ? Family::Inet : Family::Inet6;
  } else {
    return fail("v1 protocol is not TCP4, TCP6 or UNKNOWN");
  }
  ended_ = true;
  sticky_ = Result{};
  sticky_.kind = Result::Kind::Done;
  sticky_.header = h;
  buffer_.clear();
  return sticky_;
}

Result ProxyHeaderParser::finish_v2() {
  Header h;
  h.version = Version::V2;
  h.length = buffer_.size();
  h.command = (byte_at(buffer_, 12) & 0x0F) == 0 ? Command::Local : Command::Proxy;
  std::size_t payload = buffer_.size() - kV2FixedPart;
  std::size_t tlvs_at = payload;  // where the TLVs start; payload: none walked
  if (h.command == Command::Proxy) {
    // Address block sizes by family/protocol byte; 0x00 and other valid combinations carry no
    // block we can locate, so their bytes are skipped whole and the connection's addresses stand.
    std::uint8_t fam = byte_at(buffer_, 13);
    std::size_t block = 0;
    switch (fam) {
      case 0x11: case 0x12: block = 12; break;   // TCP/UDP over IPv4
      case 0x21: case 0x22: block = 36; break;   // TCP/UDP over IPv6
      case 0x31: case 0x32: block = 216; break;  // AF_UNIX stream/datagram
      default: break;
    }
    if (block > payload) return fail("v2 length shorter than its address block");
    if (block != 0) tlvs_at = block;
    const std::size_t a = kV2FixedPart;
    if (fam == 0x11) {
      h.family = h.source.family = h.destination.family = Family::Inet;
      std::memcpy(h.source.bytes.data(), buffer_.data() + a, 4);
      std::memcpy(h.destination.bytes.data(), buffer_.data() + a + 4, 4);
      h.source.port = be16(buffer_, a + 8);
      h.destination.port = be16(buffer_, a + 10);
    } else if (fam == 0x21) {
      h.family = h.source.family = h.destination.family = Family::Inet6;
      std::memcpy(h.source.bytes.data(), buffer_.data() + a, 16);
      std::memcpy(h.destination.bytes.data(), buffer_.data() + a + 16, 16);
      h.source.port = be16(buffer_, a + 32);
      h.destination.port = be16(buffer_, a + 34);
    }
    // UDP and AF_UNIX: Family::Unspec (the spec's fallback); an SMTP listener has no use for them.
  }
  // TLVs: type, 16-bit length, value; skipped, but each must fit, so that a malformed block is
  // refused rather than read past (PP2_TYPE_SSL's sub-TLVs are inside its value: skipped whole).
  for (std::size_t at = tlvs_at; at < payload;) {
    if (payload - at < 3) return fail("v2 TLV truncated");
    std::size_t len = be16(buffer_, kV2FixedPart + at + 1);
    if (payload - at - 3 < len) return fail("v2 TLV longer than the header");
    at += 3 + len;
    ++h.tlv_count;
  }
  ended_ = true;
  sticky_ = Result{};
  sticky_.kind = Result::Kind::Done;
  sticky_.header = h;
  buffer_.clear();
  return sticky_;
}

}  // namespace dotgate::proxyproto
