// lib/config/rewrite.cc — reading the "rewrite" section into a RewriteConfig (see rewrite.h).
//
// Called by config.cc (parse_config) once per load, with or without the section: the built-ins
// need smtp.hostname either way. Shape and types are checked here, key by key, as everywhere in
// lib/config; what a rule means is checked by smtp::ReplyRules::compile, whose RuleError (rule
// index, key inside the rule) becomes a ConfigError with the full path:
// "rewrite.rules[2].replace.code: ...".
#include "lib/config/rewrite_reader.h"

#include <array>

namespace dotgate::config {

namespace {

// Templates and regexes are a line of config, not a program; a bound keeps a generated config's
// mistake from becoming a megabyte per reply.
constexpr std::size_t kMaxTextKey = 1024;

std::vector<smtp::Stage> read_stages(Node& node) {
  std::array<std::string_view, smtp::kStageCount + 1> names{};
  names[0] = "any";
  for (std::size_t i = 0; i < smtp::kStageCount; ++i) names[i + 1] = smtp::kStageNames[i];
  auto one = [&](const Node& n, std::vector<smtp::Stage>& out) {
    std::size_t i = n.as_choice(names);
    if (i == 0) {
      out.clear();
      for (std::size_t s = 0; s < smtp::kStageCount; ++s) out.push_back(static_cast<smtp::Stage>(s));
      return true;
    }
    out.push_back(static_cast<smtp::Stage>(i - 1));
    return false;
  };
  std::vector<smtp::Stage> out;
  if (node.value().is_array()) {
    if (node.value().empty()) node.fail("must not be empty");
    for (std::size_t i = 0; i < node.value().size(); ++i)
      if (one(node.element(i), out)) break;
  } else {
    one(node, out);
  }
  return out;
}

std::string read_text(Node& node) {
  const std::string& s = node.as_string();
  if (s.size() > kMaxTextKey) node.fail("longer than " + std::to_string(kMaxTextKey) + " octets");
  return s;
}

// match.code: 550, or "550", "5xx", "45x".
std::string read_code_pattern(Node& node) {
  if (node.value().is_number_integer()) return std::to_string(node.as_uint(200, 599));
  if (!node.value().is_string()) node.fail("expected a reply code or a pattern like \"5xx\"");
  return node.as_string();
}

smtp::ReplyRuleSpec read_rule(Node& node, std::size_t index) {
  node.expect_object();
  smtp::ReplyRuleSpec spec;
  spec.name = "rule-" + std::to_string(index);
  if (auto n = node.member("name")) spec.name = n->as_string();
  if (auto n = node.member("stage")) {
    spec.stages = read_stages(*n);
  } else {  // "any"
    for (std::size_t s = 0; s < smtp::kStageCount; ++s) spec.stages.push_back(static_cast<smtp::Stage>(s));
  }
  if (auto m = node.member("match")) {
    m->expect_object();
    if (auto n = m->member("code")) spec.match_code = read_code_pattern(*n);
    if (auto n = m->member("enhanced")) spec.match_enhanced = n->as_string();
    if (auto n = m->member("text")) spec.match_text = read_text(*n);
    m->done();
  }
  Node r = node.required_member("replace");
  r.expect_object();
  if (auto n = r.member("code")) spec.replace_code = static_cast<int>(n->as_uint(200, 599));
  if (auto n = r.member("enhanced")) spec.replace_enhanced = n->as_string();
  if (auto n = r.member("text")) spec.replace_text = read_text(*n);
  r.done();
  node.done();
  return spec;
}

}  // namespace

void read_rewrite(std::optional<Node> node, const SmtpConfig& smtp, RewriteConfig& out) {
  smtp::RewriteOptions options;
  options.hostname = smtp.hostname;
  std::vector<smtp::ReplyRuleSpec> specs;
  std::string rules_path = "rewrite.rules";
  if (node) {
    node->expect_object();
    if (auto n = node->member("hide_banner")) options.hide_banner = n->as_bool();
    if (auto n = node->member("enhanced_codes")) options.enhanced_codes = n->as_bool();
    if (auto n = node->member("maintenance")) out.maintenance = n->as_bool();
    if (auto n = node->member("maintenance_admin")) out.maintenance_admin = n->as_bool();
    if (auto n = node->member("rules")) {
      n->expect_array();
      rules_path = n->path();
      if (n->value().size() > smtp::ReplyRules::kMaxRules)
        n->fail("at most " + std::to_string(smtp::ReplyRules::kMaxRules) + " rules");
      for (std::size_t i = 0; i < n->value().size(); ++i) {
        Node entry = n->element(i);
        specs.push_back(read_rule(entry, i));
      }
    }
    node->done();
  }
  smtp::RuleError error;
  out.rules = smtp::ReplyRules::compile(std::move(specs), std::move(options), &error);
  if (!out.rules) {
    std::string path = rules_path + "[" + std::to_string(error.rule) + "]";
    if (!error.key.empty()) path += "." + error.key;
    throw ConfigError(path + ": " + error.message);
  }
}

}  // namespace dotgate::config
