// lib/smtp/reply_rule_compiler.cc — ReplyRules::compile: from the rules the config states to the
// compiled set, refusing every rule that could make a reply invalid or change what it means.
//
// Called by lib/config (rewrite section) at load and SIGHUP, and by the unit tests. Pure; the
// result owns its compiled regexes and templates. The proof is by enumeration: for each stage of
// the rule and each reply code the rule's code pattern matches and the stage can have (200..599,
// a few hundred), the code it would produce must keep the reply's meaning
// (rewrite_keeps_meaning's rules, said in reply_rules.h). That is cheap at load and leaves no case
// to reason about by hand. Each refusal names the key in the rule that causes it.
#include <set>

#include "lib/smtp/reply_rewrite.h"
#include "lib/smtp/reply_rules.h"

namespace dotgate::smtp {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Codes a downstream reply can have at `stage` by the time the rules see it: greetings are
// normalised first; the others are what reply_allowed() lets through (the rest closes the session).
bool reachable(Stage stage, int code) {
  if (!valid_reply_code(code)) return false;
  if (stage == Stage::Greeting) return code == 220 || code == 421 || code == 554;
  ReplyContext context = stage == Stage::Ehlo   ? ReplyContext::Ehlo
                         : stage == Stage::Data ? ReplyContext::Data
                         : stage == Stage::Dot  ? ReplyContext::DataEnd
                                                : ReplyContext::Other;
  return reply_allowed(context, Reply{code, {}});
}

bool uses_enhanced_codes(Stage stage) { return stage != Stage::Greeting && stage != Stage::Ehlo; }

bool is_name_octet(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_' || c == '.';
}

// The first word of a literal is a domain (letters, digits, '-', '.') or an address literal.
bool starts_with_domain(std::string_view literal) {
  std::string_view word = literal.substr(0, literal.find(' '));
  if (word.empty()) return false;
  if (word.front() == '[') return word.size() > 2 && word.back() == ']';
  for (char c : word)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '.')) return false;
  return true;
}

std::string code_text(int code) { return std::to_string(code); }

}  // namespace

class ReplyRuleCompiler {
 public:
  ReplyRuleCompiler(std::size_t index, RuleError* error) : index_(index), error_(error) {}

  bool compile(const ReplyRuleSpec& spec, ReplyRules::Rule& rule) {
    rule.name = spec.name;
    if (spec.stages.empty()) return fail("stage", "needs at least one stage");
    for (Stage s : spec.stages) rule.stages[static_cast<std::size_t>(s)] = true;
    if (spec.match_code && !code_pattern(*spec.match_code, rule)) return false;
    if (spec.match_enhanced && !enhanced_pattern(*spec.match_enhanced, rule)) return false;
    if (spec.match_text) {
      std::string why;
      rule.regex = ReplyRegex::compile(*spec.match_text, &why);
      if (!rule.regex) return fail("match.text", "not a valid regular expression: " + why);
    }
    if (!spec.replace_code && !spec.replace_enhanced && !spec.replace_text)
      return fail("replace", "needs code, enhanced or text");
    if (spec.replace_code) {
      if (!valid_reply_code(*spec.replace_code))
        return fail("replace.code", "expected a reply code (200..599, second digit 0..5)");
      rule.replace_code = spec.replace_code;
    }
    if (spec.replace_enhanced) {
      const std::string& e = *spec.replace_enhanced;
      if (enhanced_code_length(e) != e.size() || e.empty())
        return fail("replace.enhanced", "expected an enhanced status code class.subject.detail (RFC 3463), e.g. 4.7.1");
      rule.replace_enhanced = e;
    }
    if (spec.replace_text) {
      std::string why;
      rule.replace_text = ReplyTemplate::parse(*spec.replace_text, &why);
      if (!rule.replace_text) return fail("replace.text", why);
      std::size_t groups = rule.regex ? rule.regex->groups() : 0;
      if (rule.replace_text->max_group() > groups)
        return fail("replace.text", "refers to $" + std::to_string(rule.replace_text->max_group()) +
                                        " but match.text has " + std::to_string(groups) + " group(s)");
    }
    return prove(spec, rule);
  }

 private:
  bool fail(std::string key, std::string message) {
    if (error_) *error_ = RuleError{index_, std::move(key), std::move(message)};
    return false;
  }

  bool code_pattern(const std::string& text, ReplyRules::Rule& rule) {
    ReplyRules::CodePattern p;
    bool ok = text.size() == 3;
    for (std::size_t i = 0; ok && i < 3; ++i) {
      char c = text[i] == 'X' ? 'x' : text[i];
      ok = c == 'x' || is_digit(c);
      p.digits[i] = c;
    }
    if (!ok) return fail("match.code", "expected a reply code or a pattern of digits and x (550, 5xx, 45x)");
    rule.code = p;
    return true;
  }

  bool enhanced_pattern(const std::string& text, ReplyRules::Rule& rule) {
    ReplyRules::EnhancedPattern p;
    std::size_t start = 0;
    bool ok = true;
    for (int part = 0; part < 3 && ok; ++part) {
      std::size_t dot = text.find('.', start);
      if ((part < 2) != (dot != std::string::npos)) {
        ok = false;
        break;
      }
      std::string piece = text.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (piece == "x" || piece == "X") {
        p.parts[part] = -1;
      } else if (!piece.empty() && piece.size() <= 3 && piece.find_first_not_of("0123456789") == std::string::npos) {
        p.parts[part] = std::stoi(piece);
      } else {
        ok = false;
      }
      start = dot + 1;
    }
    if (ok && p.parts[0] != -1 && p.parts[0] != 2 && p.parts[0] != 4 && p.parts[0] != 5) ok = false;
    if (!ok) return fail("match.enhanced", "expected class.subject.detail, each a number or x (5.1.1, 5.7.x)");
    rule.enhanced = p;
    return true;
  }

  // The enumeration (see the file header). `spec` for the keys' wording only.
  bool prove(const ReplyRuleSpec& spec, const ReplyRules::Rule& rule) {
    bool matches_somewhere = false, enhanced_applies = false, text_checked = false;
    std::set<std::string> never;
    for (std::size_t si = 0; si < kStageCount; ++si) {
      if (!rule.stages[si]) continue;
      Stage stage = static_cast<Stage>(si);
      for (int c = 200; c <= 599; ++c) {
        if (!reachable(stage, c) || (rule.code && !rule.code->matches(c))) continue;
        // An enhanced code pattern matches only where enhanced codes are, and of its class.
        if (rule.enhanced && (!uses_enhanced_codes(stage) || c / 100 == 3 ||
                              (rule.enhanced->parts[0] >= 0 && rule.enhanced->parts[0] != c / 100)))
          continue;
        matches_somewhere = true;
        int r = rule.replace_code.value_or(c);
        std::string where = code_text(c) + " at stage " + std::string(stage_name(stage));
        if (stage == Stage::Greeting && r != 220 && r != 421 && r != 554)
          return fail("replace.code", "would turn a " + where + " into " + code_text(r) +
                                          ": a greeting is 220, 421 or 554 (RFC 5321 4.3.2)");
        if (stage != Stage::Greeting && !reachable(stage, r))
          return fail("replace.code", "would turn a " + where + " into " + code_text(r) + ", which is no reply to " +
                                          std::string(stage_name(stage)));
        if ((c / 100 == 2) != (r / 100 == 2))
          return fail("replace.code", "would turn a " + where + " into " + code_text(r) +
                                          ": a rule must not turn an acceptance into a refusal or back (the MTA "
                                          "did the opposite of what the client would be told); narrow match.code");
        if ((c / 100 == 3 || r / 100 == 3) && r != c)
          return fail("replace.code", "would turn a " + where + " into " + code_text(r) + ": 354 stays 354");
        if (stage != Stage::Greeting && (c == 421) != (r == 421))
          return fail("replace.code", "would turn a " + where + " into " + code_text(r) +
                                          ": 421 means the MTA closes the connection; it is neither made nor undone");
        if (rule.replace_enhanced && uses_enhanced_codes(stage) && r / 100 != 3) {
          enhanced_applies = true;
          if ((*rule.replace_enhanced)[0] - '0' != r / 100)
            return fail("replace.enhanced", "class " + rule.replace_enhanced->substr(0, 1) + " on a " + code_text(r) +
                                                " reply (matched: " + where + "); the class is the code's first digit "
                                                "(RFC 3463); narrow match.code or set replace.code");
        }
        if (rule.replace_text && !text_checked && r / 100 == 2 && (stage == Stage::Greeting || stage == Stage::Ehlo)) {
          text_checked = true;
          if (!rule.replace_text->starts_with_original() && !starts_with_domain(rule.replace_text->leading_literal()))
            return fail("replace.text", "a " + std::string(stage == Stage::Greeting ? "220 greeting" : "positive EHLO reply") +
                                            " starts with a domain name (RFC 5321 4.3.1, 4.1.1.1): begin the text "
                                            "with one, or with $0");
        }
      }
    }
    if (!matches_somewhere) {
      std::string key = spec.match_enhanced ? "match.enhanced" : spec.match_code ? "match.code" : "stage";
      return fail(key, "the rule can match no reply at its stage(s)");
    }
    if (rule.replace_enhanced && !enhanced_applies)
      return fail("replace.enhanced", "would never apply: greetings, EHLO replies and 354 carry no enhanced code (RFC 2034)");
    return true;
  }

  std::size_t index_;
  RuleError* error_;
};

std::shared_ptr<const ReplyRules> ReplyRules::compile(std::vector<ReplyRuleSpec> specs, RewriteOptions options,
                                                      RuleError* error) {
  auto rules = std::make_shared<ReplyRules>();
  rules->options_ = std::move(options);
  if (specs.size() > kMaxRules) {
    if (error) *error = RuleError{kMaxRules, "", "at most " + std::to_string(kMaxRules) + " rules"};
    return nullptr;
  }
  std::set<std::string, std::less<>> names;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const ReplyRuleSpec& spec = specs[i];
    auto name_error = [&](std::string message) {
      if (error) *error = RuleError{i, "name", std::move(message)};
      return nullptr;
    };
    // The name is a metric label and a log field: short, plain, and not a built-in's.
    if (spec.name.empty() || spec.name.size() > 64) return name_error("expected 1 to 64 characters");
    for (char c : spec.name)
      if (!is_name_octet(c)) return name_error("expected letters, digits, '-', '_', '.'");
    for (auto b : kBuiltinNames)
      if (spec.name == b) return name_error("\"" + spec.name + "\" is the name of a built-in rule");
    if (!names.insert(spec.name).second) return name_error("duplicate rule name \"" + spec.name + "\"");
    Rule rule;
    if (!ReplyRuleCompiler(i, error).compile(spec, rule)) return nullptr;
    rules->rules_.push_back(std::move(rule));
  }
  return rules;
}

}  // namespace dotgate::smtp
