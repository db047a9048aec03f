// lib/smtp/reply_rules.cc — applying the compiled reply rules and the built-ins to one reply.
//
// Called by proxy/reply_rewriter.cc for every downstream reply (on worker threads, concurrently:
// nothing here is mutable). The compiler is reply_rule_compiler.cc. A reply is seen as lines of
// (enhanced code, text): the text a rule's regex searches and its template's $0 is the lines'
// texts joined by "\n", without their enhanced codes; greetings and EHLO replies carry no enhanced
// codes, and of a positive EHLO reply only the first line is text (the rest are keywords, which
// lib/smtp/ehlo.cc owns).
#include "lib/smtp/reply_rules.h"

#include "lib/smtp/reply_builtins.h"
#include "lib/smtp/reply_rewrite.h"

namespace dotgate::smtp {
namespace {

ReplyContext context_of(Stage stage) {
  switch (stage) {
    case Stage::Greeting: return ReplyContext::Greeting;
    case Stage::Ehlo: return ReplyContext::Ehlo;
    case Stage::Data: return ReplyContext::Data;
    case Stage::Dot: return ReplyContext::DataEnd;
    default: return ReplyContext::Other;
  }
}

bool uses_enhanced_codes(Stage stage) { return stage != Stage::Greeting && stage != Stage::Ehlo; }

// Only the first line of a positive EHLO reply is text; the others are keywords.
bool first_line_only(Stage stage, const Reply& reply) { return stage == Stage::Ehlo && reply.klass() == 2; }

struct Line {
  std::string enhanced;  // empty: none
  std::string text;
};

std::vector<Line> split_lines(Stage stage, const Reply& reply) {
  std::vector<Line> out;
  for (const auto& l : reply.lines) {
    Line line;
    if (uses_enhanced_codes(stage) && has_enhanced_code(reply.code, l)) {
      std::size_t n = enhanced_code_length(l);
      line.enhanced = l.substr(0, n);
      line.text = l.substr(n < l.size() ? n + 1 : n);
    } else {
      line.text = l;
    }
    out.push_back(std::move(line));
  }
  if (out.empty()) out.emplace_back();
  return out;
}

std::string joined_text(const std::vector<Line>& lines, bool first_only) {
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out.push_back('\n');
    out.append(lines[i].text);
    if (first_only) break;
  }
  return out;
}

std::vector<std::string> split_text(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (out.size() < ReplyParser::kMaxReplyLines) {
    std::size_t nl = text.find('\n', start);
    out.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

}  // namespace

std::string_view stage_name(Stage stage) { return kStageNames[static_cast<std::size_t>(stage)]; }

Stage stage_for(Verb verb) {
  switch (verb) {
    case Verb::Ehlo:
    case Verb::Helo: return Stage::Ehlo;
    case Verb::Mail: return Stage::Mail;
    case Verb::Rcpt: return Stage::Rcpt;
    case Verb::Data: return Stage::Data;
    default: return Stage::Other;
  }
}

bool ReplyRules::CodePattern::matches(int code) const {
  char text[3] = {static_cast<char>('0' + code / 100), static_cast<char>('0' + code / 10 % 10),
                  static_cast<char>('0' + code % 10)};
  for (int i = 0; i < 3; ++i)
    if (digits[i] != 'x' && digits[i] != text[i]) return false;
  return true;
}

bool ReplyRules::EnhancedPattern::matches(std::string_view enhanced) const {
  std::size_t start = 0;
  for (int part = 0; part < 3; ++part) {
    std::size_t dot = enhanced.find('.', start);
    std::string_view digits = enhanced.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    int value = 0;
    for (char c : digits) value = value * 10 + (c - '0');
    if (parts[part] >= 0 && parts[part] != value) return false;
    if (dot == std::string_view::npos) return part == 2;
    start = dot + 1;
  }
  return false;
}

bool rewrite_keeps_meaning(Stage stage, const Reply& original, const Reply& rewritten) {
  int c = original.code, r = rewritten.code;
  if (!valid_reply_code(r)) return false;
  if (stage == Stage::Greeting) {
    if (r != 220 && r != 421 && r != 554) return false;
  } else if (!reply_allowed(context_of(stage), rewritten)) {
    return false;
  }
  if ((c / 100 == 2) != (r / 100 == 2)) return false;     // accepted stays accepted, refused stays refused
  if ((c / 100 == 3 || r / 100 == 3) && r != c) return false;  // 354 stays 354
  if (stage != Stage::Greeting && (c == 421) != (r == 421)) return false;  // the MTA closes, or does not
  if (uses_enhanced_codes(stage)) {
    for (std::size_t i = 0; i < rewritten.lines.size(); ++i) {
      const std::string& line = rewritten.lines[i];
      if (enhanced_code_length(line) == 0 || line[0] - '0' == r / 100) continue;
      // A line the rule left as the MTA sent it may begin with anything the MTA put there.
      if (i < original.lines.size() && original.lines[i] == line) continue;
      return false;
    }
  }
  return true;
}

std::optional<Reply> ReplyRules::apply_rule(const Rule& rule, Stage stage, const Reply& reply) const {
  if (!rule.stages[static_cast<std::size_t>(stage)]) return std::nullopt;
  // A rule that only sets the enhanced code has nothing to do where there is none (stage "any").
  if (!rule.replace_code && !rule.replace_text && (!uses_enhanced_codes(stage) || reply.klass() == 3))
    return std::nullopt;
  if (rule.code && !rule.code->matches(reply.code)) return std::nullopt;
  std::vector<Line> lines = split_lines(stage, reply);
  if (rule.enhanced && (lines.front().enhanced.empty() || !rule.enhanced->matches(lines.front().enhanced)))
    return std::nullopt;
  bool first_only = first_line_only(stage, reply);
  std::string text = joined_text(lines, first_only);
  std::vector<std::string_view> groups;
  if (rule.regex) {
    if (!rule.regex->search(text, groups)) return std::nullopt;
  }

  Reply out;
  out.code = rule.replace_code.value_or(reply.code);
  if (rule.replace_text) {
    if (groups.empty()) groups.emplace_back();
    groups[0] = text;  // $0 is the original text, not just what the regex matched
    std::vector<std::string> texts = split_text(rule.replace_text->expand(groups));
    if (first_only) {
      std::string first;
      for (const auto& t : texts) first += (first.empty() ? "" : " ") + t;
      lines.front().text = std::move(first);
    } else {
      std::string enhanced = lines.front().enhanced;
      lines.assign(texts.size(), Line{});
      for (std::size_t i = 0; i < texts.size(); ++i) lines[i] = Line{enhanced, std::move(texts[i])};
    }
  }
  int klass = out.code / 100;
  for (auto& line : lines) {
    if (rule.replace_enhanced && uses_enhanced_codes(stage) && klass != 3) line.enhanced = *rule.replace_enhanced;
    else if (!line.enhanced.empty()) line.enhanced[0] = static_cast<char>('0' + klass);  // 5.1.1 -> 4.1.1
  }
  for (auto& line : lines) {
    if (line.enhanced.empty()) out.lines.push_back(std::move(line.text));
    else if (line.text.empty()) out.lines.push_back(std::move(line.enhanced));
    else out.lines.push_back(line.enhanced + " " + line.text);
  }
  if (!rewrite_keeps_meaning(stage, reply, out)) return std::nullopt;
  return out;
}

RewriteResult ReplyRules::apply(Stage stage, Reply reply, bool maintenance) const {
  RewriteResult result;
  auto mark = [&](Builtin b) { result.builtins |= static_cast<std::uint8_t>(1u << static_cast<unsigned>(b)); };
  if (stage == Stage::Greeting && normalise_greeting_code(reply)) mark(Builtin::GreetingCode);

  bool text_replaced = false;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    if (auto rewritten = apply_rule(rules_[i], stage, reply)) {
      reply = std::move(*rewritten);
      result.rule = static_cast<int>(i);
      text_replaced = rules_[i].replace_text.has_value();
      break;
    }
  }
  // A text the admin's own rule wrote is theirs: hide_banner leaves it alone.
  if (options_.hide_banner && !text_replaced) {
    bool hid = stage == Stage::Greeting ? hide_greeting_banner(reply, options_.hostname)
               : stage == Stage::Ehlo   ? hide_ehlo_name(reply, options_.hostname)
                                        : false;
    if (hid) mark(Builtin::HideBanner);
  }
  if (maintenance && stage == Stage::Rcpt && soft_bounce(reply)) mark(Builtin::Maintenance);
  if (options_.enhanced_codes && uses_enhanced_codes(stage) && add_enhanced_codes(reply)) mark(Builtin::EnhancedCodes);
  result.reply = std::move(reply);
  return result;
}

std::shared_ptr<const ReplyRules> ReplyRules::defaults() {
  static const std::shared_ptr<const ReplyRules> rules = std::make_shared<const ReplyRules>();
  return rules;
}

}  // namespace dotgate::smtp
