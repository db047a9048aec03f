// test/fuzz/reply_template_fuzz.cc — libFuzzer target for the reply rewriting template expander
// (lib/smtp/reply_template) and the rules that use it (lib/smtp/reply_rules).
//
// Input: one length octet N, N octets of template, then groups separated by NUL octets; the same
// bytes after the template are also read as downstream replies. Aborts when:
//   - parse() accepts a template the reference grammar below refuses, or the reverse;
//   - expand() differs from the reference expansion (an independent, naive one) other than by the
//     cap, exceeds kMaxOutput, or cuts more than a UTF-8 sequence short of it;
//   - the template with every '$' doubled does not expand to itself (literal text is literal);
//   - a compiled rule with this template yields, at any stage, a reply that is not valid RFC 5321
//     (invariant 4: a valid code, greetings 220/421/554, an enhanced code of the reply's class on
//     every 2xx/4xx/5xx line after EHLO) or that changes what the MTA's reply meant.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/smtp/reply.h"
#include "lib/smtp/reply_rewrite.h"
#include "lib/smtp/reply_rules.h"
#include "lib/smtp/reply_template.h"

using namespace dotgate::smtp;

namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }

// The grammar of reply_template.h, written again as plainly as possible: nullopt when invalid,
// else the pieces as (is_group, group, literal).
struct RefPiece {
  bool group;
  std::size_t n;
  std::string text;
};
std::optional<std::vector<RefPiece>> reference_parse(std::string_view t) {
  std::vector<RefPiece> out;
  std::size_t i = 0;
  while (i < t.size()) {
    unsigned char c = static_cast<unsigned char>(t[i]);
    if (c != '$') {
      if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) return std::nullopt;
      out.push_back({false, 0, std::string(1, t[i])});
      ++i;
      continue;
    }
    if (i + 1 == t.size()) return std::nullopt;
    if (t[i + 1] == '$') {
      out.push_back({false, 0, "$"});
      i += 2;
    } else if (digit(t[i + 1])) {
      out.push_back({true, static_cast<std::size_t>(t[i + 1] - '0'), {}});
      i += 2;
    } else if (t[i + 1] == '{') {
      std::size_t j = i + 2;
      std::string num;
      while (j < t.size() && digit(t[j]) && num.size() < 3) num += t[j++];
      if (num.empty() || j == t.size() || t[j] != '}' || std::stoul(num) > ReplyTemplate::kMaxGroup) return std::nullopt;
      out.push_back({true, std::stoul(num), {}});
      i = j + 1;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::string reference_expand(const std::vector<RefPiece>& pieces, const std::vector<std::string_view>& groups) {
  std::string out;
  for (const auto& p : pieces) {
    if (!p.group) out += p.text;
    else if (p.n < groups.size()) out += groups[p.n];
  }
  return out;
}

void check_template(std::string_view tmpl, const std::vector<std::string_view>& groups) {
  std::string error;
  auto parsed = ReplyTemplate::parse(tmpl, &error);
  auto reference = reference_parse(tmpl);
  if (parsed.has_value() != reference.has_value()) std::abort();
  if (!parsed) {
    if (error.empty()) std::abort();
    return;
  }
  std::string out = parsed->expand(groups);
  std::string want = reference_expand(*reference, groups);
  if (out.size() > ReplyTemplate::kMaxOutput) std::abort();
  if (want.compare(0, out.size(), out) != 0) std::abort();  // a prefix of the reference
  if (want.size() <= ReplyTemplate::kMaxOutput ? out.size() != want.size()
                                               : out.size() + 4 <= ReplyTemplate::kMaxOutput)
    std::abort();

  // Every '$' doubled: the text itself, whatever the groups.
  std::string escaped;
  for (char c : tmpl) escaped += c == '$' ? std::string("$$") : std::string(1, c);
  auto literal = ReplyTemplate::parse(escaped, nullptr);
  if (!literal) std::abort();  // tmpl parsed, so it has no control character
  std::string back = literal->expand(groups);
  if (std::string_view(tmpl).substr(0, back.size()) != back) std::abort();
}

void check_reply(Stage stage, const Reply& in, const Reply& out) {
  if (!valid_reply_code(out.code)) std::abort();
  if (stage == Stage::Greeting && out.code != 220 && out.code != 421 && out.code != 554) std::abort();
  if (stage != Stage::Greeting && !rewrite_keeps_meaning(stage, in, out)) std::abort();
  if (out.lines.size() > ReplyParser::kMaxReplyLines + 1) std::abort();
  bool needs_code = stage != Stage::Greeting && stage != Stage::Ehlo && out.klass() != 3;
  for (const auto& line : out.lines)
    if (needs_code && !has_enhanced_code(out.code, line)) std::abort();
  // The wire form reads back as one reply with the same code.
  ReplyParser parser;
  std::vector<Reply> back;
  std::string wire = out.serialize();
  bool fits = true;
  for (std::size_t at = 0, nl; (nl = wire.find('\n', at)) != std::string::npos; at = nl + 1)
    if (nl - at + 1 > ReplyParser::kMaxReplyLine) fits = false;
  if (fits && (!parser.feed(wire, back) || back.size() != 1 || back[0].code != out.code)) std::abort();
}

void check_rules(std::string_view tmpl, std::string_view replies) {
  ReplyRuleSpec spec;
  spec.name = "fuzz";
  spec.stages = {Stage::Greeting, Stage::Ehlo, Stage::Mail, Stage::Rcpt, Stage::Data, Stage::Dot, Stage::Other};
  spec.match_text = "^(\\S*)\\s*(.*)$";
  spec.replace_text = std::string(tmpl);
  RuleError error;
  auto rules = ReplyRules::compile({spec}, RewriteOptions{}, &error);
  ReplyRuleSpec coded = spec;  // and one that changes code and enhanced code where it may
  coded.match_code = "55x";
  coded.replace_code = 451;
  coded.replace_enhanced = "4.7.1";
  coded.stages = {Stage::Mail, Stage::Rcpt, Stage::Data, Stage::Dot, Stage::Other};
  auto coded_rules = ReplyRules::compile({coded}, RewriteOptions{true, "fuzz.example", true}, &error);

  ReplyParser parser;
  std::vector<Reply> parsed;
  parser.feed(replies, parsed);
  for (const Reply& reply : parsed) {
    for (std::size_t s = 0; s < kStageCount; ++s) {
      Stage stage = static_cast<Stage>(s);
      for (const auto& set : {rules, coded_rules, ReplyRules::defaults()}) {
        if (!set) continue;
        Reply in = reply;
        if (stage == Stage::Greeting) {
          // apply() normalises first; the meaning check compares against the normalised greeting.
          in = rewrite_reply(ReplyContext::Greeting, in);
        } else if (!reply_allowed(stage == Stage::Ehlo   ? ReplyContext::Ehlo
                                  : stage == Stage::Data ? ReplyContext::Data
                                  : stage == Stage::Dot  ? ReplyContext::DataEnd
                                                         : ReplyContext::Other,
                                  reply)) {
          continue;
        }
        for (bool maintenance : {false, true}) {
          RewriteResult r = set->apply(stage, reply, maintenance);
          // Maintenance: no 5xx leaves for RCPT, whatever the rules did.
          if (stage == Stage::Rcpt && maintenance && r.reply.klass() == 5) std::abort();
          check_reply(stage, in, r.reply);
        }
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t n = std::min<std::size_t>(data[0], size - 1);
  std::string_view tmpl(reinterpret_cast<const char*>(data) + 1, n);
  std::string_view rest(reinterpret_cast<const char*>(data) + 1 + n, size - 1 - n);
  std::vector<std::string_view> groups;
  for (std::size_t at = 0;;) {
    std::size_t nul = rest.find('\0', at);
    groups.push_back(rest.substr(at, nul == std::string_view::npos ? std::string_view::npos : nul - at));
    if (nul == std::string_view::npos || groups.size() > 12) break;
    at = nul + 1;
  }
  check_template(tmpl, groups);
  check_rules(tmpl, rest);
  return 0;
}
