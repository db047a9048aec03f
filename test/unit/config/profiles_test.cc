// Unit tests for lib/config/profiles: recipient rules (most specific wins), networks, HELO
// globs, the split's code per client class and its decision, and the config keys' refusals.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "lib/config/config.h"

using namespace dotgate::config;

namespace {
Config parse(const char* text) { return parse_config(nlohmann::json::parse(text)); }

const char* kProfiles = R"({
  "profiles": [{"name": "strict"}, {"name": "lenient", "policies": []}, {"name": "default"}],
  "recipients": [
    {"match": "*", "profile": "strict"},
    {"match": "example.org", "profile": "lenient"},
    {"match": "*@example.net", "profile": "lenient"},
    {"match": "Boss@Example.org", "profile": "strict"}
  ]
})";
}  // namespace

TEST_CASE("resolve: exact address beats domain beats catch-all, whatever the order") {
  Config c = parse(kProfiles);
  CHECK(c.profiles.resolve("boss@example.org")->name == "strict");
  CHECK(c.profiles.resolve("BOSS@EXAMPLE.ORG")->name == "strict");
  CHECK(c.profiles.resolve("anyone@example.org")->name == "lenient");
  CHECK(c.profiles.resolve("x@EXAMPLE.NET")->name == "lenient");
  CHECK(c.profiles.resolve("x@sub.example.net")->name == "strict");  // no subdomain match
  CHECK(c.profiles.resolve("x@elsewhere.test")->name == "strict");
}

TEST_CASE("resolve: no rule -> the profile named default, else none") {
  Config c = parse(R"({"profiles": [{"name": "a"}, {"name": "default"}], "recipients": [{"match": "a.test", "profile": "a"}]})");
  CHECK(c.profiles.resolve("x@a.test")->name == "a");
  CHECK(c.profiles.resolve("x@b.test")->name == "default");
  Config d = parse(R"({"profiles": [{"name": "a"}], "recipients": [{"match": "a.test", "profile": "a"}]})");
  CHECK(d.profiles.resolve("x@b.test") == nullptr);
  CHECK(d.profiles.profiles[0].all_policies);
}

TEST_CASE("networks and globs") {
  Network n;
  REQUIRE(parse_network("192.0.2.0/24", n).empty());
  CHECK(n.contains("192.0.2.77"));
  CHECK_FALSE(n.contains("192.0.3.1"));
  CHECK(n.contains("::ffff:192.0.2.5"));  // an IPv4 client on a dual-stack socket
  REQUIRE(parse_network("2001:db8::/33", n).empty());
  CHECK(n.contains("2001:db8:7fff::1"));
  CHECK_FALSE(n.contains("2001:db8:8000::1"));
  CHECK_FALSE(n.contains("192.0.2.1"));
  REQUIRE(parse_network("10.1.2.3", n).empty());
  CHECK(n.prefix == 32);
  CHECK_FALSE(parse_network("10.0.0.0/33", n).empty());
  CHECK_FALSE(parse_network("mail.example/24", n).empty());
  CHECK(glob_match("*.retry-fast.example", "MX1.Retry-Fast.Example"));
  CHECK_FALSE(glob_match("*.retry-fast.example", "retry-fast.example"));
  CHECK(glob_match("legacy.example", "LEGACY.example"));
  CHECK(glob_match("a*b*c", "axxbyyc"));
  CHECK_FALSE(glob_match("a*b*c", "axxbyy"));
}

TEST_CASE("split: code per client class, first match wins, else the default") {
  Config c = parse(R"({"split": {"code": 451, "classes": [
      {"networks": ["127.0.0.2/32"], "code": 452}, {"helo": ["*.exim.example"], "code": 452}],
      "never_defer": {"helo": ["legacy.example"]}}})");
  CHECK(c.profiles.split.code_for("127.0.0.2", "x") == 452);
  CHECK(c.profiles.split.code_for("127.0.0.1", "mx.exim.example") == 452);
  CHECK(c.profiles.split.code_for("127.0.0.1", "postfix.example") == 451);
  CHECK(c.profiles.split.never_defer.matches("127.0.0.1", "legacy.example"));
  CHECK_FALSE(c.profiles.split.never_defer.matches("127.0.0.1", ""));
}

TEST_CASE("split decision") {
  CHECK(split_decision(true, true, "a", "b") == SplitAction::Keep);
  CHECK(split_decision(false, false, "", "b") == SplitAction::Fix);
  CHECK(split_decision(false, true, "a", "a") == SplitAction::Join);
  CHECK(split_decision(false, true, "a", "b") == SplitAction::Defer);
  CHECK(split_decision(false, true, "", "") == SplitAction::Join);  // no profile matched either
}

TEST_CASE("profile keys are refused with their paths") {
  auto refused = [](const char* text, const char* path) {
    try {
      parse(text);
    } catch (const ConfigError& e) {
      CHECK_MESSAGE(std::string(e.what()).rfind(path, 0) == 0, e.what());
      return;
    }
    FAIL("accepted: " << text);
  };
  refused(R"({"profiles": [{"policies": []}]})", "profiles[0].name");
  refused(R"({"profiles": [{"name": "a"}, {"name": "a"}]})", "profiles[1].name");
  refused(R"({"profiles": [{"name": "a", "colour": 1}]})", "profiles[0].colour");
  refused(R"({"recipients": [{"match": "*", "profile": "a"}]})", "recipients");
  refused(R"({"profiles": [{"name": "a"}], "recipients": [{"match": "*", "profile": "b"}]})", "recipients[0].profile");
  refused(R"({"profiles": [{"name": "a"}], "recipients": [{"match": "a@*", "profile": "a"}]})", "recipients[0].match");
  refused(R"({"split": {"code": 450}})", "split.code");
  refused(R"({"split": {"classes": [{"code": 452}]}})", "split.classes[0]");
  refused(R"({"split": {"never_defer": {"networks": ["300.0.0.0/8"]}}})", "split.never_defer.networks[0]");
  refused(R"({"profiles": [{"name": "a", "verdict": {"deadline": 0}}]})", "profiles[0].verdict.deadline");
}
