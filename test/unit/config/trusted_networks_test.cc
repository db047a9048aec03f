// test/unit/config/trusted_networks_test.cc — TrustedNetworks: which peers a list trusts (a table
// of lists and addresses), and parse_trusted_networks' refusals naming the bad entry.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/config/trusted_networks.h"

using dotgate::config::parse_trusted_networks;
using dotgate::config::TrustedNetworks;

TEST_CASE("trusted networks: which peers each list trusts") {
  struct Case {
    std::vector<std::string> networks;
    const char* peer;
    bool trusted;
  };
  const std::vector<Case> cases = {
      {{}, "127.0.0.1", false},  // an empty list trusts nobody
      {{"10.0.0.0/8"}, "10.1.2.3", true},
      {{"10.0.0.0/8"}, "11.0.0.1", false},
      {{"10.0.0.0/8"}, "::ffff:10.9.9.9", true},  // IPv4 peer on a dual-stack listener
      {{"10.0.0.0/8"}, "2001:db8::1", false},
      {{"192.0.2.7"}, "192.0.2.7", true},  // a bare address is a /32
      {{"192.0.2.7"}, "192.0.2.8", false},
      {{"192.0.2.0/25"}, "192.0.2.127", true},
      {{"192.0.2.0/25"}, "192.0.2.128", false},
      {{"10.0.0.0/8", "2001:db8::/32"}, "2001:db8:ffff::1", true},
      {{"2001:db8::/32"}, "2001:db9::1", false},
      {{"0.0.0.0/0"}, "203.0.113.9", true},
      {{"10.0.0.0/8"}, "not an address", false},
      {{"10.0.0.0/8"}, "", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.peer);
    TrustedNetworks t;
    REQUIRE(parse_trusted_networks(c.networks, t).empty());
    CHECK(t.contains(c.peer) == c.trusted);
  }
}

TEST_CASE("trusted networks: a bad entry is refused by name and the list is left alone") {
  TrustedNetworks t;
  REQUIRE(parse_trusted_networks({"127.0.0.0/8"}, t).empty());
  CHECK(parse_trusted_networks({"10.0.0.0/8", "10.0.0.0/33"}, t) == "10.0.0.0/33: prefix length over 32");
  CHECK(parse_trusted_networks({"lb.example.org"}, t) ==
        "lb.example.org: expected a network like 192.0.2.0/24 or 2001:db8::/32");
  REQUIRE(t.networks.size() == 1);
  CHECK(t.contains("127.0.0.1"));
}
