// lib/config/trusted_networks.cc — TrustedNetworks: a list of config::Network, any one matches.
//
// Called where a listener or a session decides whether its peer may send a PROXY header or
// XFORWARD. Pure; owns its vector. Linear in the list: such lists hold a handful of balancer or
// relay networks, and the check runs once per connection, not per byte.
#include "lib/config/trusted_networks.h"

#include <algorithm>

namespace dotgate::config {

bool TrustedNetworks::contains(std::string_view ip) const {
  return std::any_of(networks.begin(), networks.end(), [&](const Network& n) { return n.contains(ip); });
}

std::string parse_trusted_networks(const std::vector<std::string>& texts, TrustedNetworks& out) {
  TrustedNetworks parsed;
  for (const auto& text : texts) {
    Network n;
    std::string error = parse_network(text, n);
    if (!error.empty()) return text + ": " + error;
    parsed.networks.push_back(n);
  }
  out = std::move(parsed);
  return {};
}

}  // namespace dotgate::config
