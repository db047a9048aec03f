// lib/config/trusted_networks.h — the networks whose peers may speak for someone else.
//
// A PROXY protocol header (lib/proxyproto) or an XFORWARD command (lib/smtp/xclient.h) changes
// the client address that dotgate's policies, its logs and the MTA see, so it is honoured only
// from a peer inside one of these networks (haproxy's proxy-protocol.txt, section 5; Postfix's
// smtpd_authorized_xforward_hosts). Plain data plus a pure lookup; the networks are the same
// config::Network that split.never_defer matches clients with (lib/config/profiles.h), so an
// IPv4 peer on a dual-stack listener (::ffff:a.b.c.d) matches its IPv4 network.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lib/config/profiles.h"

namespace dotgate::config {

struct TrustedNetworks {
  std::vector<Network> networks;
  bool empty() const { return networks.empty(); }
  // `ip` is an address literal (the connection's peer). An empty list trusts nobody.
  bool contains(std::string_view ip) const;
};

// Each text as parse_network reads it ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"). Returns an
// empty string when all are valid (and fills `out`), else "<text>: <why>" for the first bad one
// (and leaves `out` alone).
std::string parse_trusted_networks(const std::vector<std::string>& texts, TrustedNetworks& out);

}  // namespace dotgate::config
