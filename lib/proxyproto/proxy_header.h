// lib/proxyproto/proxy_header.h — the PROXY protocol header (haproxy's proxy-protocol.txt,
// versions 1 and 2) that a load balancer puts before the first byte of a relayed connection.
//
// Who calls it: the session of a listener configured with "proxy_protocol", before it greets
// the client, and only for a peer in the listener's trusted networks (the spec, section 5: a
// header from anyone else would let any client choose the address dotgate and the MTA see).
// What it is: a pure, resumable parser, bytes in, one result out: feed() takes each chunk as it
// arrives and answers NeedMore, Done (the header, and how many bytes of that chunk it used: the
// rest is SMTP) or Error (a reason for the log; the caller closes the connection, relaying
// nothing, as the spec asks for any sequence that does not match the protocol exactly).
// What it owns: at most kMaxHeader bytes of a header not yet complete. A Done or an Error sticks
// until reset(); feed() after it changes nothing and consumes nothing.
// What it does not do: time. The spec asks the receiver to give up on a header that does not
// arrive within a few seconds (at least 3, a TCP retransmit); that timer is the session's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dotgate::proxyproto {

// Version 1 is a text line of at most 107 bytes with its CRLF (the spec's worst case,
// "PROXY UNKNOWN <ipv6> <ipv6> 65535 65535\r\n").
inline constexpr std::size_t kMaxV1Line = 107;
// Version 2 is a 16-byte fixed part and a length field of up to 65535 more bytes. The address
// block is at most 216 bytes (AF_UNIX) and the TLVs real balancers send (AWS, GCP, Azure,
// haproxy's SSL facts) fit in a few hundred; we accept 2048. A larger length is refused at once:
// otherwise a peer could announce 64 KiB and trickle it, holding that much memory per
// connection for as long as it likes (memory exhaustion across many such connections).
inline constexpr std::size_t kMaxV2Payload = 2048;
inline constexpr std::size_t kV2FixedPart = 16;
inline constexpr std::size_t kMaxHeader = kV2FixedPart + kMaxV2Payload;

enum class Version { V1, V2 };

// LOCAL (v2 only): the balancer opened the connection itself (a health check); the addresses
// of the connection are the real ones. PROXY: relayed on behalf of the client in the header.
enum class Command { Local, Proxy };

// The family the header reports. Unspec: v1 "UNKNOWN", v2 AF_UNSPEC, or a v2 family/protocol
// dotgate does not use (UDP, AF_UNIX) — the spec lets the receiver fall back to the real
// connection's addresses for those, and so do we.
enum class Family { Unspec, Inet, Inet6 };

struct Address {
  Family family = Family::Unspec;
  std::array<std::uint8_t, 16> bytes{};  // network order; 4 used for Inet
  std::uint16_t port = 0;
  std::string ip() const;  // "192.0.2.1", "2001:db8::1"; empty for Unspec
  bool operator==(const Address&) const = default;
};

struct Header {
  Version version = Version::V1;
  Command command = Command::Proxy;
  Family family = Family::Unspec;
  Address source;       // the client, when use_connection_addresses() is false
  Address destination;  // the address the client connected to (the balancer's)
  std::size_t length = 0;     // header bytes in all
  std::size_t tlv_count = 0;  // v2 TLVs walked over (and skipped)
  // True when the header carries no client address to use: LOCAL, or an unspecified family.
  // Then the connection's own peer and local addresses stand (the spec, 2.1 and 2.2).
  bool use_connection_addresses() const { return command == Command::Local || family == Family::Unspec; }
};

struct Result {
  enum class Kind { NeedMore, Done, Error };
  Kind kind = Kind::NeedMore;
  // Done: bytes of the chunk just fed that belong to the header; what follows them is the
  // client's first SMTP bytes. NeedMore: the whole chunk. Error: 0.
  std::size_t consumed = 0;
  Header header;             // Done only
  std::string_view error;    // Error only: a static reason for the log ("bad v1 source port")
  // Error only: the header ran past a size cap (kMaxV1Line, kMaxV2Payload) rather than breaking
  // the syntax; the session counts the two apart (an oversized header is a probe or a
  // misconfigured balancer sending large TLVs, a malformed one a stranger or a bug).
  bool too_long = false;
};

class ProxyHeaderParser {
 public:
  Result feed(std::string_view chunk);
  void reset();

 private:
  Result finish_v1();
  Result finish_v2();
  Result fail(std::string_view reason, bool too_long = false);

  std::string buffer_;  // the header so far, never over kMaxHeader bytes
  Result sticky_;       // Done or Error once reached
  bool ended_ = false;
};

}  // namespace dotgate::proxyproto
