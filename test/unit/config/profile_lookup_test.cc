// Unit tests for lib/config/profile_lookup: "profile_lookup" defaults, every refusal with its
// key's path, and that it needs "profiles".
#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "lib/config/config.h"

using namespace dotgate::config;
using namespace std::chrono_literals;

namespace {
const char* kProfiles = R"("profiles": [{"name": "strict"}, {"name": "open", "policies": []}])";

Config parse(const std::string& lookup) {
  return parse_config(nlohmann::json::parse(std::string("{") + kProfiles + R"(, "profile_lookup": )" + lookup + "}"));
}

std::string error_of(const std::string& document) {
  try {
    parse_config(nlohmann::json::parse(document));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string lookup_error(const std::string& lookup) {
  return error_of(std::string("{") + kProfiles + R"(, "profile_lookup": )" + lookup + "}");
}
}  // namespace

TEST_CASE("profile_lookup: off unless configured; defaults") {
  Config none = parse_config(nlohmann::json::parse(std::string("{") + kProfiles + "}"));
  CHECK_FALSE(none.profile_lookup.enabled);

  Config c = parse(R"({"url": "http://127.0.0.1:8090/profile"})");
  CHECK(c.profile_lookup.enabled);
  CHECK(c.profile_lookup.url == "http://127.0.0.1:8090/profile");
  CHECK(c.profile_lookup.timeout == 2s);
  CHECK(c.profile_lookup.ttl == 300s);
  CHECK(c.profile_lookup.negative_ttl == 60s);
  CHECK(c.profile_lookup.max_entries == 10000);
  CHECK(c.profile_lookup.max_connections == 4);
  CHECK(c.profile_lookup.on_error == ProfileLookupConfig::OnError::Tempfail);
}

TEST_CASE("profile_lookup: every key read") {
  Config c = parse(R"({"url": "http://[::1]:81/p?x=1", "timeout": 0.05, "ttl": 0, "negative_ttl": 1.5,
                       "max_entries": 1, "max_connections": 64, "on_error": "rules"})");
  CHECK(c.profile_lookup.timeout == 50ms);
  CHECK(c.profile_lookup.ttl == 0ms);
  CHECK(c.profile_lookup.negative_ttl == 1500ms);
  CHECK(c.profile_lookup.max_entries == 1);
  CHECK(c.profile_lookup.max_connections == 64);
  CHECK(c.profile_lookup.on_error == ProfileLookupConfig::OnError::Rules);
  CHECK(parse(R"({"url": "http://127.0.0.1/", "timeout": 60})").profile_lookup.timeout == 60s);
}

TEST_CASE("profile_lookup: refusals name the key's path") {
  struct Case {
    const char* lookup;
    const char* error;
  };
  const Case cases[] = {
      {R"([])", "profile_lookup: expected object"},
      {R"({})", "profile_lookup.url: missing required key"},
      {R"({"url": 5})", "profile_lookup.url: expected string"},
      {R"({"url": "https://127.0.0.1/"})", "profile_lookup.url: expected an http:// URL (no TLS yet)"},
      {R"({"url": "http://lookup.example/"})", "profile_lookup.url: host must be an IP literal (no DNS lookups)"},
      {R"({"url": "http://127.0.0.1:0/"})", "profile_lookup.url: invalid port"},
      {R"({"url": "http://127.0.0.1/", "timeout": 0.01})", "profile_lookup.timeout: expected number of seconds >= 0.05 and <= 60"},
      {R"({"url": "http://127.0.0.1/", "timeout": 61})", "profile_lookup.timeout: expected number of seconds > 0 and <= 60"},
      {R"({"url": "http://127.0.0.1/", "timeout": "2"})", "profile_lookup.timeout: expected number of seconds > 0 and <= 60"},
      {R"({"url": "http://127.0.0.1/", "ttl": -1})", "profile_lookup.ttl: expected number of seconds >= 0 and <= 86400"},
      {R"({"url": "http://127.0.0.1/", "ttl": "5m"})", "profile_lookup.ttl: expected number of seconds >= 0 and <= 86400"},
      {R"({"url": "http://127.0.0.1/", "negative_ttl": 86401})", "profile_lookup.negative_ttl: expected number of seconds >= 0 and <= 86400"},
      {R"({"url": "http://127.0.0.1/", "max_entries": 0})", "profile_lookup.max_entries: expected integer in 1..10000000"},
      {R"({"url": "http://127.0.0.1/", "max_entries": 1.5})", "profile_lookup.max_entries: expected integer"},
      {R"({"url": "http://127.0.0.1/", "max_connections": 65})", "profile_lookup.max_connections: expected integer in 1..64"},
      {R"({"url": "http://127.0.0.1/", "on_error": "accept"})", "profile_lookup.on_error: expected one of tempfail, rules"},
      {R"({"url": "http://127.0.0.1/", "on_error": true})", "profile_lookup.on_error: expected one of tempfail, rules"},
      {R"({"url": "http://127.0.0.1/", "cache": {}})", "profile_lookup.cache: unknown key"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.lookup));
    CHECK(lookup_error(c.lookup) == std::string(c.error));
  }
}

TEST_CASE("profile_lookup: needs profiles") {
  CHECK(error_of(R"({"profile_lookup": {"url": "http://127.0.0.1/"}})") == "profile_lookup: needs \"profiles\"");
  CHECK(error_of(R"({"profiles": [], "profile_lookup": {"url": "http://127.0.0.1/"}})") ==
        "profile_lookup: needs \"profiles\"");
}

TEST_CASE("profile_lookup: settings compare equal only when all are equal (a reload keeps the cache)") {
  ProfileLookupConfig a = parse(R"({"url": "http://127.0.0.1/"})").profile_lookup;
  ProfileLookupConfig b = parse(R"({"url": "http://127.0.0.1/"})").profile_lookup;
  CHECK(a == b);
  b.ttl = 1s;
  CHECK_FALSE(a == b);
}
