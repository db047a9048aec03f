// lib/smtp/reply_rules.h — reply rewriting: the compiled rule set every downstream reply passes
// on its way to the client (issue 14), built-ins included.
//
// Who calls it: lib/config compiles the "rewrite" section into a ReplyRules at load (each
// refusal comes back as a RuleError naming the rule and the key, which lib/config turns into a
// ConfigError "rewrite.rules[2].replace.code: ..."); proxy/reply_rewriter.h holds the compiled set
// in the Runtime and calls apply() for each downstream reply. Pure: no loop, no I/O, no state
// between calls; immutable once compiled, so every worker thread shares one.
//
// A rule matches a reply at a stage by code pattern ("550", "5xx"), enhanced code pattern
// ("5.1.1", "5.7.x") and/or a regex on its text, all that are given; it replaces the code, the
// enhanced code and/or the text (a ReplyTemplate). The first rule that matches is the one applied.
// The order around the rules is in lib/smtp/reply_builtins.h.
//
// What compile() refuses, so that a rewritten reply is still valid RFC 5321 and still tells the
// client what the MTA did (the session keeps its state from the MTA's reply, not ours):
//   - a code a stage cannot have (a greeting other than 220/421/554; 250 to DATA; 3xx but 354);
//   - a 2xx made a refusal or a refusal made a 2xx (the MTA accepted what the client is told was
//     refused, or the reverse); a 354 changed; 421 (the MTA closes) made or unmade after the greeting;
//   - an enhanced code of another class than the reply's code, or one where none may be
//     (greetings, EHLO replies, 354: RFC 2034);
//   - a 220 greeting or positive EHLO text that does not start with a domain (RFC 5321 4.3.1) or $0;
//   - a template that refers to a group the regex does not have, a regex that does not compile,
//     a rule that can match nothing at its stages.
// apply() checks its result again all the same (belt and braces): a rule whose result would be
// invalid is not applied.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/smtp/command.h"
#include "lib/smtp/reply.h"
#include "lib/smtp/reply_regex.h"
#include "lib/smtp/reply_template.h"

namespace dotgate::smtp {

// Which reply: to the connection (greeting), to EHLO/HELO, MAIL, RCPT, DATA, the final dot, or
// any other command (only rules at stage "any" see those).
enum class Stage : std::uint8_t { Greeting, Ehlo, Mail, Rcpt, Data, Dot, Other };
inline constexpr std::size_t kStageCount = 7;
inline constexpr std::array<std::string_view, kStageCount> kStageNames = {"greeting", "ehlo", "mail", "rcpt",
                                                                          "data",     "dot",  "other"};
std::string_view stage_name(Stage stage);
// The stage of the reply to a command: EHLO/HELO, MAIL, RCPT, DATA; Other for the rest. (The
// greeting and the dot are not commands: the caller names those stages itself.)
Stage stage_for(Verb verb);

// The built-ins, by the name their rewrites are counted under.
enum class Builtin : std::uint8_t { GreetingCode, HideBanner, Maintenance, EnhancedCodes };
inline constexpr std::size_t kBuiltinCount = 4;
inline constexpr std::array<std::string_view, kBuiltinCount> kBuiltinNames = {"greeting_code", "hide_banner",
                                                                              "maintenance", "enhanced_codes"};

// One rule as the config states it. Shape and types are lib/config's business; meaning is checked
// by compile().
struct ReplyRuleSpec {
  std::string name;
  std::vector<Stage> stages;                    // "any": every stage
  std::optional<std::string> match_code;        // three of 0-9 or x: "550", "5xx", "45x"
  std::optional<std::string> match_enhanced;    // class.subject.detail, each a number or x
  std::optional<std::string> match_text;        // PCRE2 pattern, searched in the reply's text
  std::optional<int> replace_code;
  std::optional<std::string> replace_enhanced;  // "4.7.1"
  std::optional<std::string> replace_text;      // ReplyTemplate
};

struct RewriteOptions {
  bool hide_banner = true;
  std::string hostname = "localhost";  // what hide_banner shows (smtp.hostname)
  bool enhanced_codes = true;
};

// Why compile() refused: the rule's index, the key inside the rule ("replace.code"), and what is
// wrong with it.
struct RuleError {
  std::size_t rule = 0;
  std::string key;
  std::string message;
};

// What apply() did: the reply, the configured rule applied (index, or -1), the built-ins that
// changed it (bit 1 << Builtin).
struct RewriteResult {
  Reply reply;
  int rule = -1;
  std::uint8_t builtins = 0;
};

class ReplyRules {
 public:
  static constexpr std::size_t kMaxRules = 256;

  // The compiled set, or nullptr with `error` filled.
  static std::shared_ptr<const ReplyRules> compile(std::vector<ReplyRuleSpec> specs, RewriteOptions options,
                                                   RuleError* error);
  // No rules, the default options: what a Config made in code (not loaded) gets.
  static std::shared_ptr<const ReplyRules> defaults();

  // Rewrites one downstream reply. Precondition: reply_allowed() for the stage's context (the
  // greeting excepted: any greeting is normalised). `maintenance`: a 5xx to RCPT becomes 4xx.
  RewriteResult apply(Stage stage, Reply reply, bool maintenance) const;

  const RewriteOptions& options() const { return options_; }
  std::size_t size() const { return rules_.size(); }
  const std::string& rule_name(std::size_t i) const { return rules_[i].name; }

 private:
  struct CodePattern {
    std::array<char, 3> digits{'x', 'x', 'x'};  // '0'..'9' or 'x'
    bool matches(int code) const;
  };
  struct EnhancedPattern {
    std::array<int, 3> parts{-1, -1, -1};  // -1: x
    bool matches(std::string_view enhanced) const;
  };
  struct Rule {
    std::string name;
    std::array<bool, kStageCount> stages{};
    std::optional<CodePattern> code;
    std::optional<EnhancedPattern> enhanced;
    std::optional<ReplyRegex> regex;
    std::optional<int> replace_code;
    std::optional<std::string> replace_enhanced;
    std::optional<ReplyTemplate> replace_text;
  };
  friend class ReplyRuleCompiler;

  // The rule's rewrite of `reply`, or nullopt when it does not match.
  std::optional<Reply> apply_rule(const Rule& rule, Stage stage, const Reply& reply) const;

  std::vector<Rule> rules_;
  RewriteOptions options_;
};

// Whether `rewritten` may replace `original` at `stage`: a valid code for the stage (greeting:
// 220/421/554), the same outcome (2xx stays 2xx, a refusal stays a refusal, 354 stays 354, 421
// after the greeting stays 421), enhanced codes of the code's class. What compile() proves of a
// rule and apply() checks again.
bool rewrite_keeps_meaning(Stage stage, const Reply& original, const Reply& rewritten);

}  // namespace dotgate::smtp
