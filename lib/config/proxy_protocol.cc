// lib/config/proxy_protocol.cc — the PROXY protocol keys of the config (see
// proxy_protocol_reader.h; config.h for the fields).
//
// What the checks guard against: a proxy_protocol listener that trusts nobody closes every
// connection (a typo, refused here); a trusted list on a listener without proxy_protocol would be
// believed to protect something it does not (refused too). Networks are read as split.never_defer
// reads them (config::parse_network), each error at its element's path.
#include "lib/config/proxy_protocol_reader.h"

namespace dotgate::config {

namespace {

// 256 networks is far more than any set of balancers; the list is walked once per connection.
constexpr std::size_t kMaxTrustedNetworks = 256;

TrustedNetworks read_networks(Node& node) {
  node.expect_array();
  if (node.value().empty()) node.fail("must not be empty (an empty list trusts nobody)");
  if (node.value().size() > kMaxTrustedNetworks) node.fail("at most 256 networks");
  TrustedNetworks out;
  for (std::size_t i = 0; i < node.value().size(); ++i) {
    Node entry = node.element(i);
    Network n;
    std::string error = parse_network(entry.as_string(), n);
    if (!error.empty()) entry.fail(error);
    out.networks.push_back(n);
  }
  return out;
}

}  // namespace

void read_listener_proxy_protocol(Node& listener, Endpoint& out) {
  if (auto n = listener.member("proxy_protocol")) out.proxy_protocol = n->as_bool();
  if (auto n = listener.member("proxy_protocol_from")) {
    if (!out.proxy_protocol) n->fail("needs \"proxy_protocol\": true on this listener");
    out.proxy_protocol_from = read_networks(*n);
  }
}

void read_proxy_protocol(Node& root, Config& config) {
  if (auto n = root.member("proxy_protocol_from")) config.proxy_protocol_from = read_networks(*n);
  // At least 3 s (proxy-protocol.txt section 2: a retransmitted segment must fit); at most a
  // minute: a balancer sends its header with its first segment, so anything slower is a probe
  // holding a connection slot.
  if (auto n = root.member("proxy_protocol_timeout")) {
    config.proxy_protocol_timeout = n->as_seconds(60, false);
    if (config.proxy_protocol_timeout < std::chrono::seconds(3)) n->fail("expected number of seconds >= 3 and <= 60");
  }
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    Endpoint& l = config.listeners[i];
    if (!l.proxy_protocol || !l.proxy_protocol_from.empty()) continue;
    if (config.proxy_protocol_from.empty())
      throw ConfigError("listeners[" + std::to_string(i) +
                        "].proxy_protocol: needs proxy_protocol_from (on the listener or at the top level): "
                        "the networks of the balancers allowed to send PROXY headers");
    l.proxy_protocol_from = config.proxy_protocol_from;
  }
}

}  // namespace dotgate::config
