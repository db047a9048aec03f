// lib/smtp/reply_template.h — the replacement text of a reply rewriting rule: literal text with
// references to what the rule matched.
//
// Syntax: `$0` is the original text of the reply (its lines joined by "\n", enhanced codes left
// out), `$1` ... `$9` and `${10}` ... `${99}` the capture groups of the rule's regex, `$$` a
// literal dollar. Any other `$` is refused at parse time, so a typo is a config error and never
// text a client sees. Literal text must be printable: a CR, LF or other control byte in it would
// let the config inject reply lines (the serialiser would blank them anyway; refusing says so).
//
// Parsed once at config load (lib/smtp/reply_rules.cc); expand() is a pure function of the
// parsed template and the groups, called for each reply a rule rewrites, and fuzzed
// (test/fuzz/reply_template_fuzz.cc). Its output is capped at kMaxOutput octets, because `$0`
// repeated would otherwise multiply a downstream's 256-line reply in our memory and on the wire.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::smtp {

class ReplyTemplate {
 public:
  static constexpr std::size_t kMaxOutput = 4096;  // octets; ReplyParser::kMaxReplyLine as well
  static constexpr std::size_t kMaxGroup = 99;

  // The template, or nullopt with `error` saying why ("$ at offset 4 is not followed by ...").
  static std::optional<ReplyTemplate> parse(std::string_view text, std::string* error);

  // Highest group referenced (0 when only $0 or none): checked against the regex's groups.
  std::size_t max_group() const { return max_group_; }
  // Whether the template begins with a reference to $0 (the original text), not a literal.
  bool starts_with_original() const;
  // The literal text before the first reference (the whole template when it has none).
  std::string_view leading_literal() const;

  // groups[0] is $0; a reference past the end of `groups` (an unset optional group) expands to
  // nothing. At most kMaxOutput octets; a cut never splits a UTF-8 sequence.
  std::string expand(std::span<const std::string_view> groups) const;

 private:
  struct Piece {
    bool is_group = false;
    std::size_t group = 0;  // is_group
    std::string literal;    // !is_group
  };
  std::vector<Piece> pieces_;
  std::size_t max_group_ = 0;
};

}  // namespace dotgate::smtp
