// Unit tests for the limits policy and its config validation through the registry.
#include <doctest/doctest.h>

#include "lib/config/config.h"
#include "lib/spool/spool.h"
#include "policies/limits.h"
#include "policies/registry.h"

using namespace dotgate;
using namespace dotgate::policy;

namespace {
Verdict run_mail(LimitsPolicy& p, std::vector<smtp::EsmtpParam> params) {
  Envelope env;
  env.mail_params = std::move(params);
  Verdict got = Verdict::fail(599, "", "unset");
  p.mail(env, [&](Verdict v) { got = v; });
  return got;
}
}  // namespace

TEST_CASE("limits: SIZE declared at MAIL") {
  LimitsPolicy p({1000, 3});
  CHECK(run_mail(p, {}).passed());
  CHECK(run_mail(p, {{"SIZE", "1000", true}}).passed());
  Verdict over = run_mail(p, {{"SIZE", "1001", true}});
  CHECK(over.reply.code == 552);
  CHECK(over.reply.enhanced().value_or("") == "5.3.4");
  // A number too large for 64 bits is over any limit.
  CHECK(run_mail(p, {{"SIZE", "99999999999999999999999", true}}).reply.code == 552);
  CHECK(run_mail(p, {{"BODY", "8BITMIME", true}}).passed());
}

TEST_CASE("limits: recipients and message size") {
  LimitsPolicy p({1000, 2});
  Envelope env;
  env.recipients = {"a@x", "b@x"};
  Verdict got;
  p.rcpt(env, "c@x", [&](Verdict v) { got = v; });
  CHECK(got.reply.code == 452);
  CHECK(got.reply.enhanced().value_or("") == "4.5.3");
  env.recipients = {"a@x"};
  p.rcpt(env, "b@x", [&](Verdict v) { got = v; });
  CHECK(got.passed());

  auto spool = std::make_shared<spool::Spool>(1024, "/tmp");
  env.message_size = 1000;
  p.data_end(env, spool, [&](Verdict v) { got = v; });
  CHECK(got.passed());
  env.message_size = 1001;
  p.data_end(env, spool, [&](Verdict v) { got = v; });
  CHECK(got.reply.code == 552);
}

TEST_CASE("registry: limits config errors carry their path") {
  config::Config c;
  c.policies = nlohmann::json::parse(R"([{"type": "limits", "max_message_size": "big"}])");
  CHECK_THROWS_WITH_AS(PolicySet::build(c), "policies[0].max_message_size: expected integer in 1..18446744073709551615",
                       config::ConfigError);
  c.policies = nlohmann::json::parse(R"([{"type": "limits"}, {"type": "limits", "max_recipents": 5}])");
  CHECK_THROWS_WITH_AS(PolicySet::build(c), "policies[1].max_recipents: unknown key", config::ConfigError);
  c.policies = nlohmann::json::parse(R"([{"type": "nosuch"}])");
  CHECK_THROWS_AS(PolicySet::build(c), config::ConfigError);
  c.policies = nlohmann::json::parse(R"([{"max_recipients": 5}])");
  CHECK_THROWS_WITH_AS(PolicySet::build(c), "policies[0].type: missing required key", config::ConfigError);
  c.policies = nlohmann::json::parse(R"([{"type": "limits", "required": true, "max_recipients": 5}])");
  auto set = PolicySet::build(c);
  CHECK(set->names() == std::vector<std::string>{"limits"});
  CHECK(set->make_chain({})->size() == 1);
}
