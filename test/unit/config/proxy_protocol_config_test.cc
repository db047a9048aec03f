// test/unit/config/proxy_protocol_config_test.cc — the PROXY protocol keys: listeners[].
// proxy_protocol and proxy_protocol_from, the top-level proxy_protocol_from (inherited by the
// listeners that name none) and proxy_protocol_timeout; each refusal names its key's path.
#include <doctest/doctest.h>

#include <string>

#include "lib/config/config.h"

using namespace dotgate::config;
using nlohmann::json;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_config(json::parse(text));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("config proxy protocol: off by default") {
  Config c = parse_config(json::parse(R"({"listeners": [{"port": 25}]})"));
  CHECK_FALSE(c.listeners.at(0).proxy_protocol);
  CHECK(c.listeners.at(0).proxy_protocol_from.empty());
  CHECK(c.proxy_protocol_from.empty());
  CHECK(c.proxy_protocol_timeout == std::chrono::seconds(5));
}

TEST_CASE("config proxy protocol: a listener's own list, the top-level default, the timeout") {
  Config c = parse_config(json::parse(R"({
    "listeners": [{"port": 25, "proxy_protocol": true, "proxy_protocol_from": ["192.0.2.10"]},
                  {"port": 26, "proxy_protocol": true},
                  {"port": 27}],
    "proxy_protocol_from": ["10.0.0.0/8", "2001:db8::/32"],
    "proxy_protocol_timeout": 3.5})"));
  REQUIRE(c.listeners.size() == 3);
  const auto& own = c.listeners[0].proxy_protocol_from;
  CHECK(own.contains("192.0.2.10"));
  CHECK_FALSE(own.contains("10.1.2.3"));  // its own list replaces the default, it does not add to it
  const auto& inherited = c.listeners[1].proxy_protocol_from;
  CHECK(inherited.contains("10.1.2.3"));
  CHECK(inherited.contains("2001:db8::7"));
  CHECK(inherited.contains("::ffff:10.9.9.9"));  // a dual-stack listener's view of an IPv4 balancer
  CHECK_FALSE(inherited.contains("192.0.2.10"));
  CHECK_FALSE(c.listeners[2].proxy_protocol);
  CHECK(c.listeners[2].proxy_protocol_from.empty());  // a plain listener trusts nobody to speak for others
  CHECK(c.proxy_protocol_timeout == std::chrono::milliseconds(3500));
}

TEST_CASE("config proxy protocol: each refusal starts with the offending key's path") {
  CHECK(error_of(R"({"listeners": [{"port": 25, "proxy_protocol": true}]})") ==
        "listeners[0].proxy_protocol: needs proxy_protocol_from (on the listener or at the top level): "
        "the networks of the balancers allowed to send PROXY headers");
  CHECK(error_of(R"({"listeners": [{"port": 25, "proxy_protocol_from": ["10.0.0.0/8"]}]})") ==
        "listeners[0].proxy_protocol_from: needs \"proxy_protocol\": true on this listener");
  CHECK(error_of(R"({"listeners": [{"port": 25, "proxy_protocol": "yes"}]})") ==
        "listeners[0].proxy_protocol: expected boolean");
  CHECK(error_of(R"({"listeners": [{"port": 25, "proxy_protocol": true, "proxy_protocol_from": []}]})") ==
        "listeners[0].proxy_protocol_from: must not be empty (an empty list trusts nobody)");
  CHECK(error_of(R"({"listeners": [{"port": 25, "proxy_protocol": true, "proxy_protocol_from": "10.0.0.0/8"}]})") ==
        "listeners[0].proxy_protocol_from: expected array");
  CHECK(error_of(R"({"proxy_protocol_from": ["10.0.0.0/8", "10.0.0.0/33"]})") ==
        "proxy_protocol_from[1]: prefix length over 32");
  CHECK(error_of(R"({"proxy_protocol_from": ["lb.example.org"]})").rfind("proxy_protocol_from[0]: ", 0) == 0);
  CHECK(error_of(R"({"proxy_protocol_from": [7]})") == "proxy_protocol_from[0]: expected string");
  CHECK(error_of(R"({"proxy_protocol_timeout": 2})") == "proxy_protocol_timeout: expected number of seconds >= 3 and <= 60");
  CHECK(error_of(R"({"proxy_protocol_timeout": 61})") == "proxy_protocol_timeout: expected number of seconds > 0 and <= 60");
  CHECK(error_of(R"({"listeners": [{"port": 25, "proxy_protocl": true}]})") == "listeners[0].proxy_protocl: unknown key");
}
