// lib/proxyproto/proxy_addresses.h — what a PROXY header (proxy_header.h) makes of a
// connection's two addresses, in the text form the rest of dotgate uses for them.
//
// Who calls it: the session of a proxy_protocol listener, once the header is complete (and its
// unit test). What it is: pure functions over values; owns nothing. The text form is the one
// net::TcpConnection::peer_name() gives ("192.0.2.1:4321", "[2001:db8::1]:4321"), because
// everything downstream of the session reads it that way: the policies' client_ip(), the XCLIENT
// ADDR/PORT and DESTADDR/DESTPORT split, the log lines.
#pragma once

#include <string>

#include "lib/proxyproto/proxy_header.h"

namespace dotgate::proxyproto {

// "192.0.2.1:4321", "[2001:db8::1]:4321"; empty for Family::Unspec (no address to print).
std::string endpoint_text(const Address& address);

// A connection's two ends as text: the peer (the client) and the local end (what it connected to).
struct ConnectionEnds {
  std::string peer;
  std::string local;
  bool operator==(const ConnectionEnds&) const = default;
};

// The ends the session uses after `header`: its source and destination, or the connection's own
// when the header carries none to use (LOCAL: the balancer's own health check; v1 UNKNOWN, v2
// AF_UNSPEC, UDP, AF_UNIX: the spec's fallback, proxy-protocol.txt 2.1 and 2.2).
ConnectionEnds ends_after(const Header& header, const ConnectionEnds& connection);

}  // namespace dotgate::proxyproto
