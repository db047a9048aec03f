// test/unit/config/rewrite_test.cc — the "rewrite" section of lib/config: every refusal of the rule
// compiler and of the section's shape comes back as a ConfigError whose message starts with the
// full key path ("rewrite.rules[1].replace.code: ..."); defaults; smtp.hostname reaches the
// hide_banner built-in; a loaded rule does what it says.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/config/config.h"

using dotgate::config::Config;
using dotgate::config::ConfigError;
using dotgate::config::parse_config;
using dotgate::smtp::Reply;
using dotgate::smtp::Stage;
using nlohmann::json;

namespace {

std::string error_of(const json& doc) {
  try {
    parse_config(doc);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// A config whose rewrite.rules are a valid rule followed by `bad`: the path must name rules[1].
json with_rule(json bad) {
  json good = {{"stage", "rcpt"}, {"match", {{"code", 550}}}, {"replace", {{"text", "fine"}}}};
  return {{"rewrite", {{"rules", json::array({good, bad})}}}};
}

}  // namespace

TEST_CASE("rewrite: defaults") {
  Config c = parse_config(json::object());
  REQUIRE(c.rewrite.rules);
  CHECK(c.rewrite.rules->size() == 0);
  CHECK(c.rewrite.rules->options().hide_banner);
  CHECK(c.rewrite.rules->options().enhanced_codes);
  CHECK(c.rewrite.rules->options().hostname == "localhost");
  CHECK_FALSE(c.rewrite.maintenance);
  CHECK(c.rewrite.maintenance_admin);
  Config named = parse_config(json{{"rewrite", {{"hide_banner", false}}}, {"smtp", {{"hostname", "gate.example"}}}});
  CHECK(named.rewrite.rules->options().hostname == "gate.example");  // read after "smtp", wherever it is
  CHECK_FALSE(named.rewrite.rules->options().hide_banner);
  Config made;  // a Config built in code (not loaded) still has the built-ins
  REQUIRE(made.rewrite.rules);
}

TEST_CASE("rewrite: a loaded rule applies") {
  Config c = parse_config(json::parse(R"json({
    "smtp": {"hostname": "gate.example"},
    "rewrite": {"maintenance": true, "maintenance_admin": false, "enhanced_codes": false, "rules": [
      {"name": "unknown", "stage": ["rcpt", "mail"], "match": {"code": "55x", "enhanced": "5.1.x", "text": "(\\S+@\\S+)"},
       "replace": {"code": 550, "enhanced": "5.1.1", "text": "No such mailbox: $1"}}
    ]}})json"));
  CHECK(c.rewrite.maintenance);
  CHECK_FALSE(c.rewrite.maintenance_admin);
  REQUIRE(c.rewrite.rules->size() == 1);
  CHECK(c.rewrite.rules->rule_name(0) == "unknown");
  auto r = c.rewrite.rules->apply(Stage::Rcpt, Reply{551, {"5.1.6 user bob@example.net moved"}}, false);
  CHECK(r.reply.serialize() == "550 5.1.1 No such mailbox: bob@example.net\r\n");
  CHECK(r.rule == 0);
  auto g = c.rewrite.rules->apply(Stage::Greeting, Reply{220, {"mx.example.org ESMTP Postfix"}}, false);
  CHECK(g.reply.serialize() == "220 gate.example ESMTP\r\n");
  // default names: rule-<index>
  Config d = parse_config(with_rule({{"stage", "dot"}, {"replace", {{"text", "$0"}}}}));
  CHECK(d.rewrite.rules->rule_name(0) == "rule-0");
  CHECK(d.rewrite.rules->rule_name(1) == "rule-1");
}

TEST_CASE("rewrite: every refusal names its key path") {
  struct Row {
    json doc;
    const char* error;  // the message's beginning: the path and what is wrong
  };
  std::vector<json> many(257, {{"replace", {{"text", "x"}}}});
  const std::vector<Row> rows = {
      // the section's shape
      {{{"rewrite", 1}}, "rewrite: expected object"},
      {{{"rewrite", {{"bogus", true}}}}, "rewrite.bogus: unknown key"},
      {{{"rewrite", {{"hide_banner", "yes"}}}}, "rewrite.hide_banner: expected boolean"},
      {{{"rewrite", {{"enhanced_codes", 1}}}}, "rewrite.enhanced_codes: expected boolean"},
      {{{"rewrite", {{"maintenance", "on"}}}}, "rewrite.maintenance: expected boolean"},
      {{{"rewrite", {{"maintenance_admin", 0}}}}, "rewrite.maintenance_admin: expected boolean"},
      {{{"rewrite", {{"rules", {{"a", 1}}}}}}, "rewrite.rules: expected array"},
      {{{"rewrite", {{"rules", many}}}}, "rewrite.rules: at most 256 rules"},
      {with_rule(1), "rewrite.rules[1]: expected object"},
      {with_rule({{"stage", "rcpt"}}), "rewrite.rules[1].replace: missing required key"},
      {with_rule({{"replace", {{"text", "x"}}}, {"colour", "red"}}), "rewrite.rules[1].colour: unknown key"},
      {with_rule({{"replace", {{"text", "x"}, {"txt", "y"}}}}), "rewrite.rules[1].replace.txt: unknown key"},
      {with_rule({{"match", {{"cod", 550}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.cod: unknown key"},
      {with_rule({{"match", 550}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match: expected object"},
      {with_rule({{"stage", "sometimes"}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].stage: expected one of any, greeting, ehlo, mail, rcpt, data, dot, other"},
      {with_rule({{"stage", json::array()}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].stage: must not be empty"},
      {with_rule({{"stage", {"rcpt", "later"}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].stage[1]: expected one of"},
      {with_rule({{"match", {{"code", 700}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.code: expected integer in 200..599"},
      {with_rule({{"match", {{"code", true}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.code: expected a reply code or a pattern"},
      {with_rule({{"match", {{"enhanced", 511}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.enhanced: expected string"},
      {with_rule({{"match", {{"text", std::string(1025, 'a')}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.text: longer than 1024 octets"},
      {with_rule({{"match", {{"code", 550}}}, {"replace", {{"code", "450"}}}}), "rewrite.rules[1].replace.code: expected integer"},
      {with_rule({{"match", {{"code", 550}}}, {"replace", {{"code", 150}}}}), "rewrite.rules[1].replace.code: expected integer in 200..599"},
      {with_rule({{"replace", {{"text", std::string(1025, 'a')}}}}), "rewrite.rules[1].replace.text: longer than 1024 octets"},
      {with_rule({{"name", 7}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].name: expected string"},
      // the compiler's refusals (lib/smtp/reply_rule_compiler.cc), each with the path
      {with_rule({{"name", "rule-0"}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].name: duplicate rule name \"rule-0\""},
      {with_rule({{"name", "hide_banner"}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].name: \"hide_banner\" is the name of a built-in rule"},
      {with_rule({{"name", "no spaces"}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].name: expected letters, digits"},
      {with_rule({{"match", {{"code", "5z0"}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.code: expected a reply code or a pattern"},
      {with_rule({{"stage", "data"}, {"match", {{"code", 250}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.code: the rule can match no reply at its stage(s)"},
      {with_rule({{"match", {{"enhanced", "5.1"}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.enhanced: expected class.subject.detail"},
      {with_rule({{"stage", "greeting"}, {"match", {{"enhanced", "5.x.x"}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.enhanced: the rule can match no reply"},
      {with_rule({{"match", {{"text", "(a"}}}, {"replace", {{"text", "x"}}}}), "rewrite.rules[1].match.text: not a valid regular expression: missing closing parenthesis"},
      {with_rule({{"match", {{"code", 550}}}, {"replace", json::object()}}), "rewrite.rules[1].replace: needs code, enhanced or text"},
      {with_rule({{"match", {{"code", 550}}}, {"replace", {{"code", 570}}}}), "rewrite.rules[1].replace.code: expected a reply code (200..599, second digit 0..5)"},
      {with_rule({{"stage", "greeting"}, {"match", {{"code", 554}}}, {"replace", {{"code", 550}}}}), "rewrite.rules[1].replace.code: would turn a 554 at stage greeting into 550: a greeting is 220, 421 or 554"},
      {with_rule({{"stage", "data"}, {"match", {{"code", "5xx"}}}, {"replace", {{"code", 250}}}}), "rewrite.rules[1].replace.code: would turn a 500 at stage data into 250, which is no reply to data"},
      {with_rule({{"stage", "rcpt"}, {"match", {{"code", 250}}}, {"replace", {{"code", 550}}}}), "rewrite.rules[1].replace.code: would turn a 250 at stage rcpt into 550: a rule must not turn an acceptance into a refusal"},
      {with_rule({{"stage", "dot"}, {"replace", {{"code", 451}}}}), "rewrite.rules[1].replace.code: would turn a 200 at stage dot into 451"},
      {with_rule({{"stage", "data"}, {"match", {{"code", 354}}}, {"replace", {{"code", 451}}}}), "rewrite.rules[1].replace.code: would turn a 354 at stage data into 451: 354 stays 354"},
      {with_rule({{"stage", "rcpt"}, {"match", {{"code", "4xx"}}}, {"replace", {{"code", 450}}}}), "rewrite.rules[1].replace.code: would turn a 421 at stage rcpt into 450: 421 means the MTA closes"},
      {with_rule({{"match", {{"code", 550}}}, {"replace", {{"enhanced", "5.1"}}}}), "rewrite.rules[1].replace.enhanced: expected an enhanced status code"},
      {with_rule({{"stage", "rcpt"}, {"match", {{"code", 550}}}, {"replace", {{"enhanced", "4.1.1"}}}}), "rewrite.rules[1].replace.enhanced: class 4 on a 550 reply"},
      {with_rule({{"stage", "ehlo"}, {"match", {{"code", "5xx"}}}, {"replace", {{"enhanced", "5.7.1"}}}}), "rewrite.rules[1].replace.enhanced: would never apply"},
      {with_rule({{"replace", {{"text", "50$"}}}}), "rewrite.rules[1].replace.text: '$' at the end (write $$ for a dollar) at offset 2"},
      {with_rule({{"replace", {{"text", "line\r\nRCPT"}}}}), "rewrite.rules[1].replace.text: control character at offset 4"},
      {with_rule({{"match", {{"text", "(a)(b)"}}}, {"replace", {{"text", "$3"}}}}), "rewrite.rules[1].replace.text: refers to $3 but match.text has 2 group(s)"},
      {with_rule({{"stage", "greeting"}, {"replace", {{"text", "Welcome, friend"}}}}), "rewrite.rules[1].replace.text: a 220 greeting starts with a domain name"},
      {with_rule({{"stage", "ehlo"}, {"match", {{"code", 250}}}, {"replace", {{"text", "<hi>"}}}}), "rewrite.rules[1].replace.text: a positive EHLO reply starts with a domain name"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.doc.dump());
    std::string got = error_of(row.doc);
    CHECK_MESSAGE(got.rfind(row.error, 0) == 0, got);
  }
}
