// test/unit/smtp/reply_rules_test.cc — lib/smtp/reply_rules: what apply() makes of a downstream
// reply at each stage, with the built-ins alone and with configured rules (tables: rules, stage,
// downstream reply, maintenance flag -> wire form, rule applied, built-ins that fired); the
// compiler's refusals as RuleError (rule index and key; the config paths are in
// test/unit/config/rewrite_test.cc); rewrite_keeps_meaning.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/smtp/reply_builtins.h"
#include "lib/smtp/reply_rules.h"

using namespace dotgate::smtp;

namespace {

constexpr std::uint8_t bit(Builtin b) { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(b)); }
constexpr std::uint8_t kGreeting = bit(Builtin::GreetingCode), kHide = bit(Builtin::HideBanner),
                       kMaint = bit(Builtin::Maintenance), kEnh = bit(Builtin::EnhancedCodes);

const std::vector<Stage> kAny = {Stage::Greeting, Stage::Ehlo, Stage::Mail, Stage::Rcpt,
                                 Stage::Data,     Stage::Dot,  Stage::Other};

ReplyRuleSpec rule(std::string name, std::vector<Stage> stages) {
  ReplyRuleSpec s;
  s.name = std::move(name);
  s.stages = std::move(stages);
  return s;
}

std::shared_ptr<const ReplyRules> compiled(std::vector<ReplyRuleSpec> specs, RewriteOptions options = {}) {
  RuleError error;
  auto rules = ReplyRules::compile(std::move(specs), std::move(options), &error);
  INFO("rules[" << error.rule << "]." << error.key << ": " << error.message);
  REQUIRE(rules);
  return rules;
}

struct Row {
  Stage stage;
  Reply in;
  bool maintenance;
  const char* wire;
  int rule;
  std::uint8_t builtins;
};

void check_rows(const ReplyRules& rules, const std::vector<Row>& rows) {
  for (const auto& row : rows) {
    CAPTURE(stage_name(row.stage));
    CAPTURE(row.in.serialize());
    CAPTURE(row.maintenance);
    RewriteResult r = rules.apply(row.stage, row.in, row.maintenance);
    CHECK(r.reply.serialize() == row.wire);
    CHECK(r.rule == row.rule);
    CHECK(int(r.builtins) == int(row.builtins));
  }
}

}  // namespace

TEST_CASE("stage_for: EHLO and HELO share a stage; commands without one are Other") {
  CHECK(stage_for(Verb::Ehlo) == Stage::Ehlo);
  CHECK(stage_for(Verb::Helo) == Stage::Ehlo);
  CHECK(stage_for(Verb::Mail) == Stage::Mail);
  CHECK(stage_for(Verb::Rcpt) == Stage::Rcpt);
  CHECK(stage_for(Verb::Data) == Stage::Data);
  for (Verb v : {Verb::Rset, Verb::Noop, Verb::Quit, Verb::Vrfy, Verb::Help, Verb::Auth}) CHECK(stage_for(v) == Stage::Other);
  CHECK(stage_name(Stage::Dot) == "dot");
}

TEST_CASE("built-ins alone (the defaults)") {
  check_rows(*ReplyRules::defaults(), {
      // greeting_code then hide_banner: one line, dotgate's name, whatever the MTA said
      {Stage::Greeting, Reply{250, {"mx.example.org ESMTP Postfix (Debian/GNU)", "second"}}, false,
       "220 localhost ESMTP\r\n", -1, kGreeting | kHide},
      {Stage::Greeting, Reply{220, {"localhost ESMTP"}}, false, "220 localhost ESMTP\r\n", -1, 0},
      // refusals keep their reason; only the leading domain goes
      {Stage::Greeting, Reply{550, {"mx.example.org no mail from you"}}, false, "554 localhost no mail from you\r\n", -1,
       kGreeting | kHide},
      {Stage::Greeting, Reply{421, {"[192.0.2.1] busy", "try later"}}, false, "421-localhost busy\r\n421 try later\r\n", -1,
       kHide},
      {Stage::Greeting, Reply{421, {"Service not available"}}, false, "421 Service not available\r\n", -1, 0},
      {Stage::Greeting, Reply{354, {"odd"}}, false, "421 odd\r\n", -1, kGreeting},
      // EHLO and HELO: the name line only; keywords are lib/smtp/ehlo.cc's
      {Stage::Ehlo, Reply{250, {"mx.example.org Hello client [192.0.2.7]", "PIPELINING", "SIZE 100"}}, false,
       "250-localhost\r\n250-PIPELINING\r\n250 SIZE 100\r\n", -1, kHide},
      {Stage::Ehlo, Reply{250, {"mx.example.org"}}, false, "250 localhost\r\n", -1, kHide},
      {Stage::Ehlo, Reply{550, {"mx.example.org go away"}}, false, "550 mx.example.org go away\r\n", -1, 0},
      // enhanced codes where missing, not on 354
      {Stage::Mail, Reply{250, {"Ok"}}, false, "250 2.0.0 Ok\r\n", -1, kEnh},
      {Stage::Rcpt, Reply{550, {"5.1.1 No such user"}}, false, "550 5.1.1 No such user\r\n", -1, 0},
      {Stage::Data, Reply{354, {"go ahead"}}, false, "354 go ahead\r\n", -1, 0},
      {Stage::Dot, Reply{250, {"2.0.0 Ok: queued as ABC"}}, false, "250 2.0.0 Ok: queued as ABC\r\n", -1, 0},
      {Stage::Other, Reply{252, {"Cannot VRFY"}}, false, "252 2.0.0 Cannot VRFY\r\n", -1, kEnh},
      // maintenance: RCPT 5xx -> 4xx, enhanced codes of every line too; elsewhere nothing
      {Stage::Rcpt, Reply{550, {"5.1.1 No such user"}}, true, "450 4.1.1 No such user\r\n", -1, kMaint},
      {Stage::Rcpt, Reply{554, {"5.7.1 Relay denied", "5.7.1 see policy"}}, true,
       "454-4.7.1 Relay denied\r\n454 4.7.1 see policy\r\n", -1, kMaint},
      {Stage::Rcpt, Reply{550, {"No such user"}}, true, "450 4.0.0 No such user\r\n", -1, kMaint | kEnh},
      {Stage::Rcpt, Reply{521, {"5.3.2 no mail here"}}, true, "450 4.3.2 no mail here\r\n", -1, kMaint},  // not 421
      {Stage::Rcpt, Reply{450, {"4.2.0 busy"}}, true, "450 4.2.0 busy\r\n", -1, 0},
      {Stage::Rcpt, Reply{250, {"2.1.5 Ok"}}, true, "250 2.1.5 Ok\r\n", -1, 0},
      {Stage::Mail, Reply{550, {"5.7.1 no"}}, true, "550 5.7.1 no\r\n", -1, 0},
      {Stage::Dot, Reply{550, {"5.7.1 no"}}, true, "550 5.7.1 no\r\n", -1, 0},
  });
}

TEST_CASE("built-ins switched off") {
  RewriteOptions off;
  off.hide_banner = false;
  off.enhanced_codes = false;
  off.hostname = "gate.example";
  auto rules = compiled({}, off);
  check_rows(*rules, {
      // greeting_code cannot be switched off: it is invariant 4
      {Stage::Greeting, Reply{250, {"mx.example.org ESMTP", "second"}}, false, "220-mx.example.org ESMTP\r\n220 second\r\n",
       -1, kGreeting},
      {Stage::Ehlo, Reply{250, {"mx.example.org", "PIPELINING"}}, false, "250-mx.example.org\r\n250 PIPELINING\r\n", -1, 0},
      {Stage::Rcpt, Reply{550, {"No such user"}}, false, "550 No such user\r\n", -1, 0},
      {Stage::Rcpt, Reply{550, {"No such user"}}, true, "450 No such user\r\n", -1, kMaint},
  });
  RewriteOptions named;
  named.hostname = "gate.example";
  check_rows(*compiled({}, named), {
      {Stage::Greeting, Reply{220, {"mx.example.org ESMTP"}}, false, "220 gate.example ESMTP\r\n", -1, kHide},
  });
}

TEST_CASE("configured rules: matching and replacing") {
  std::vector<ReplyRuleSpec> specs;
  auto unknown = rule("unknown-user", {Stage::Rcpt});  // rules[0]
  unknown.match_code = "550";
  unknown.match_text = "(?i)user (\\S+) unknown";
  unknown.replace_code = 551;
  unknown.replace_enhanced = "5.1.6";
  unknown.replace_text = "No mailbox $1 here; ask the postmaster";
  specs.push_back(unknown);
  auto soft = rule("quota", {Stage::Rcpt, Stage::Dot});  // rules[1]
  soft.match_code = "55x";
  soft.match_enhanced = "5.2.x";
  soft.replace_code = 452;
  specs.push_back(soft);
  auto prefix = rule("prefix", {Stage::Dot});  // rules[2]
  prefix.match_code = "5xx";
  prefix.replace_text = "Refused by the mail server: $0";
  specs.push_back(prefix);
  auto banner = rule("banner", {Stage::Greeting});  // rules[3]
  banner.match_code = "220";
  banner.replace_text = "$0 (filtered)";
  specs.push_back(banner);
  auto ehlo = rule("ehlo-name", {Stage::Ehlo});  // rules[4]
  ehlo.match_code = "250";
  ehlo.match_text = "Hello";
  ehlo.replace_text = "relay.example.org at your service";
  specs.push_back(ehlo);
  auto noop = rule("noop", kAny);  // rules[5]: "any" reaches the commands without a stage
  noop.match_code = "2xx";
  noop.match_text = "^NOOP ok$";
  noop.replace_text = "Nothing done";
  specs.push_back(noop);
  auto enh = rule("enhanced-only", {Stage::Mail});  // rules[6]
  enh.match_code = "553";
  enh.replace_enhanced = "5.1.7";
  specs.push_back(enh);
  auto rules = compiled(specs);
  check_rows(*rules, {
      {Stage::Rcpt, Reply{550, {"5.1.1 User bob@example.net unknown"}}, false,
       "551 5.1.6 No mailbox bob@example.net here; ask the postmaster\r\n", 0, 0},
      // regex does not match: the next rule that does, or the built-ins alone
      {Stage::Rcpt, Reply{550, {"5.7.1 Relay denied"}}, false, "550 5.7.1 Relay denied\r\n", -1, 0},
      // the enhanced code pattern; class 5 -> 4 takes the enhanced codes along
      {Stage::Rcpt, Reply{552, {"5.2.2 Mailbox full", "5.2.2 try later"}}, false,
       "452-4.2.2 Mailbox full\r\n452 4.2.2 try later\r\n", 1, 0},
      {Stage::Rcpt, Reply{552, {"Mailbox full"}}, false, "552 5.0.0 Mailbox full\r\n", -1, kEnh},  // no code to match
      // first match wins: quota before prefix at the dot
      {Stage::Dot, Reply{552, {"5.2.3 Too big"}}, false, "452 4.2.3 Too big\r\n", 1, 0},
      // $0 is the whole text, lines joined; each line keeps the first line's enhanced code
      {Stage::Dot, Reply{554, {"5.7.1 Spam", "5.7.1 see https://example.org/why"}}, false,
       "554-5.7.1 Refused by the mail server: Spam\r\n554 5.7.1 see https://example.org/why\r\n", 2, 0},
      {Stage::Dot, Reply{554, {"Spam"}}, false, "554 5.0.0 Refused by the mail server: Spam\r\n", 2, kEnh},
      {Stage::Dot, Reply{250, {"2.0.0 queued"}}, false, "250 2.0.0 queued\r\n", -1, 0},
      // the admin's greeting text stays: hide_banner does not undo it
      {Stage::Greeting, Reply{250, {"mx.example.org ESMTP"}}, false, "220 mx.example.org ESMTP (filtered)\r\n", 3, kGreeting},
      {Stage::Greeting, Reply{554, {"mx.example.org no"}}, false, "554 localhost no\r\n", -1, kHide},
      // EHLO: the first line is the text; the keywords stay
      {Stage::Ehlo, Reply{250, {"mx.example.org Hello [192.0.2.1]", "PIPELINING", "8BITMIME"}}, false,
       "250-relay.example.org at your service\r\n250-PIPELINING\r\n250 8BITMIME\r\n", 4, 0},
      {Stage::Other, Reply{250, {"NOOP ok"}}, false, "250 2.0.0 Nothing done\r\n", 5, kEnh},
      {Stage::Other, Reply{250, {"2.0.0 NOOP ok"}}, false, "250 2.0.0 Nothing done\r\n", 5, 0},
      {Stage::Mail, Reply{553, {"5.1.3 Bad sender", "5.1.3 syntax"}}, false, "553-5.1.7 Bad sender\r\n553 5.1.7 syntax\r\n", 6,
       0},
      {Stage::Mail, Reply{553, {"Bad sender"}}, false, "553 5.1.7 Bad sender\r\n", 6, 0},
      // maintenance after the rules: the rule's 551 still goes out as 451
      {Stage::Rcpt, Reply{550, {"User x unknown"}}, true, "451 4.1.6 No mailbox x here; ask the postmaster\r\n", 0, kMaint},
  });
}

TEST_CASE("compile: refusals name the rule and the key") {
  struct Row {
    ReplyRuleSpec spec;
    const char* key;
    const char* message;  // a part of it
  };
  auto with = [](std::vector<Stage> stages, auto edit) {
    ReplyRuleSpec s = rule("r", std::move(stages));
    edit(s);
    return s;
  };
  const std::vector<Row> rows = {
      {with({}, [](auto& s) { s.replace_text = "x"; }), "stage", "at least one stage"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "5z0"; s.replace_text = "x"; }), "match.code", "pattern"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "6xx"; s.replace_text = "x"; }), "match.code", "can match no reply"},
      {with({Stage::Data}, [](auto& s) { s.match_code = "250"; s.replace_text = "x"; }), "match.code", "can match no reply"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_enhanced = "5.1"; s.replace_text = "x"; }), "match.enhanced", "class.subject"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_enhanced = "3.1.1"; s.replace_text = "x"; }), "match.enhanced", "class.subject"},
      {with({Stage::Greeting}, [](auto& s) { s.match_enhanced = "x.x.x"; s.replace_text = "x"; }), "match.enhanced",
       "can match no reply"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "250"; s.match_enhanced = "5.x.x"; s.replace_text = "x"; }),
       "match.enhanced", "can match no reply"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_text = "(unclosed"; s.replace_text = "x"; }), "match.text",
       "missing closing parenthesis"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "550"; }), "replace", "needs code, enhanced or text"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "550"; s.replace_code = 560; }), "replace.code", "second digit"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "550"; s.replace_enhanced = "5.1"; }), "replace.enhanced", "RFC 3463"},
      {with({Stage::Rcpt}, [](auto& s) { s.replace_text = "cost $x"; }), "replace.text", "at offset 5"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_text = "(a)"; s.replace_text = "$2"; }), "replace.text",
       "refers to $2 but match.text has 1 group"},
      {with({Stage::Rcpt}, [](auto& s) { s.replace_text = "$1"; }), "replace.text", "has 0 group"},
      {with({Stage::Greeting}, [](auto& s) { s.match_code = "554"; s.replace_code = 550; }), "replace.code",
       "a greeting is 220, 421 or 554"},
      {with({Stage::Data}, [](auto& s) { s.match_code = "5xx"; s.replace_code = 250; }), "replace.code",
       "which is no reply to data"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "250"; s.replace_code = 550; }), "replace.code",
       "acceptance into a refusal"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "550"; s.replace_code = 250; }), "replace.code",
       "acceptance into a refusal"},
      {with({Stage::Rcpt}, [](auto& s) { s.replace_code = 451; }), "replace.code", "acceptance into a refusal"},
      {with({Stage::Data}, [](auto& s) { s.match_code = "354"; s.replace_code = 451; }), "replace.code", "354 stays 354"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "4xx"; s.replace_code = 450; }), "replace.code", "421"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "450"; s.replace_code = 421; }), "replace.code", "421"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "550"; s.replace_enhanced = "4.1.1"; }), "replace.enhanced",
       "class 4 on a 550"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "550"; s.replace_code = 450; s.replace_enhanced = "5.1.1"; }),
       "replace.enhanced", "class 5 on a 450"},
      {with({Stage::Rcpt}, [](auto& s) { s.match_code = "5xx"; s.replace_enhanced = "5.1.1"; s.replace_code = 250; }),
       "replace.code", "acceptance"},
      {with({Stage::Rcpt}, [](auto& s) { s.replace_enhanced = "5.7.1"; }), "replace.enhanced", "on a 2"},
      {with({Stage::Greeting, Stage::Ehlo}, [](auto& s) { s.match_code = "5xx"; s.replace_enhanced = "5.7.1"; }),
       "replace.enhanced", "would never apply"},
      {with({Stage::Greeting}, [](auto& s) { s.replace_text = "Welcome!"; }), "replace.text", "starts with a domain name"},
      {with({Stage::Ehlo}, [](auto& s) { s.match_code = "2xx"; s.replace_text = "$1 hi"; s.match_text = "(x)"; }),
       "replace.text", "starts with a domain name"},
  };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CAPTURE(i);
    RuleError error;
    auto ok = rule("ok", {Stage::Rcpt});
    ok.match_code = "550";
    ok.replace_text = "fine";
    CHECK_FALSE(ReplyRules::compile({ok, rows[i].spec}, {}, &error));
    CHECK(error.rule == 1);
    CHECK(error.key == rows[i].key);
    CHECK_MESSAGE(error.message.find(rows[i].message) != std::string::npos, error.message);
  }
}

TEST_CASE("compile: what is allowed") {
  std::vector<ReplyRuleSpec> ok;
  auto a = rule("greeting-421", {Stage::Greeting});  // at the greeting 421 and 554 may swap
  a.match_code = "421";
  a.replace_code = 554;
  ok.push_back(a);
  auto b = rule("domain-first", {Stage::Greeting, Stage::Ehlo});
  b.match_code = "2xx";
  b.replace_text = "mail.example.org ready";
  ok.push_back(b);
  auto c = rule("any-enhanced", kAny);  // applies where codes are; greeting/EHLO skip it
  c.match_code = "55x";
  c.replace_enhanced = "5.7.1";
  ok.push_back(c);
  auto d = rule("421-text", {Stage::Rcpt});
  d.match_code = "421";
  d.replace_text = "closing: $0";
  ok.push_back(d);
  auto e = rule("354-text", {Stage::Data});
  e.match_code = "354";
  e.replace_text = "Send it";
  ok.push_back(e);
  auto rules = compiled(ok);
  CHECK(rules->size() == 5);
  check_rows(*rules, {
      {Stage::Greeting, Reply{421, {"busy"}}, false, "554 busy\r\n", 0, 0},
      {Stage::Greeting, Reply{220, {"x ESMTP"}}, false, "220 mail.example.org ready\r\n", 1, 0},
      {Stage::Ehlo, Reply{550, {"no"}}, false, "550 no\r\n", -1, 0},  // 55x at ehlo: no enhanced code there
      {Stage::Dot, Reply{550, {"no"}}, false, "550 5.7.1 no\r\n", 2, 0},
      {Stage::Data, Reply{354, {"go"}}, false, "354 Send it\r\n", 4, 0},
  });
}

TEST_CASE("compile: names") {
  RuleError error;
  auto named = [](std::string n) {
    auto s = rule(std::move(n), {Stage::Rcpt});
    s.replace_text = "x";
    return s;
  };
  for (const char* bad : {"", "two words", "x\"y", "hide_banner", "maintenance", "greeting_code", "enhanced_codes"}) {
    CAPTURE(bad);
    CHECK_FALSE(ReplyRules::compile({named(bad)}, {}, &error));
    CHECK(error.key == "name");
  }
  CHECK_FALSE(ReplyRules::compile({named(std::string(65, 'a'))}, {}, &error));
  CHECK_FALSE(ReplyRules::compile({named("a"), named("a")}, {}, &error));
  CHECK(error.rule == 1);
  CHECK(error.message == "duplicate rule name \"a\"");
  CHECK(ReplyRules::compile({named("a-b_c.1"), named(std::string(64, 'z'))}, {}, &error));
}

TEST_CASE("rewrite_keeps_meaning") {
  CHECK(rewrite_keeps_meaning(Stage::Rcpt, Reply{550, {"x"}}, Reply{450, {"4.1.1 x"}}));
  CHECK_FALSE(rewrite_keeps_meaning(Stage::Rcpt, Reply{550, {"x"}}, Reply{450, {"5.1.1 x"}}));
  CHECK(rewrite_keeps_meaning(Stage::Rcpt, Reply{550, {"4.1.1 x"}}, Reply{550, {"4.1.1 x"}}));  // the MTA's own line
  CHECK_FALSE(rewrite_keeps_meaning(Stage::Rcpt, Reply{550, {"x"}}, Reply{250, {"x"}}));
  CHECK_FALSE(rewrite_keeps_meaning(Stage::Rcpt, Reply{550, {"x"}}, Reply{421, {"x"}}));
  CHECK_FALSE(rewrite_keeps_meaning(Stage::Data, Reply{354, {"x"}}, Reply{250, {"x"}}));
  CHECK_FALSE(rewrite_keeps_meaning(Stage::Greeting, Reply{220, {"x"}}, Reply{250, {"x"}}));
  CHECK(rewrite_keeps_meaning(Stage::Greeting, Reply{421, {"x"}}, Reply{554, {"x"}}));
  CHECK_FALSE(rewrite_keeps_meaning(Stage::Rcpt, Reply{550, {"x"}}, Reply{650, {"x"}}));
}
