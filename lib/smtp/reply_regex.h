// lib/smtp/reply_regex.h — a compiled PCRE2 pattern that a reply rewriting rule matches a
// downstream reply's text with (rewrite.rules[].match.text).
//
// Compiled once at config load (lib/smtp/reply_rule_compiler.cc), shared read-only by every
// worker thread (a pcre2_code is safe to match from several threads; the match data is made per
// call). Byte semantics: no UTF mode, so any octets a downstream sends can be matched and none
// make the match fail; (?i) and the other inline options work as usual. The match is bounded
// (kMatchLimit, kDepthLimit): the text comes from the MTA and often quotes the client (addresses,
// HELO names), so a pattern that backtracks badly must cost a bounded amount per reply, not hang
// a worker loop. A match that hits the bound counts as no match.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::smtp {

class ReplyRegex {
 public:
  static constexpr std::size_t kMaxPattern = 1024;  // octets; a rule, not a program
  static constexpr std::uint32_t kMatchLimit = 100000;
  static constexpr std::uint32_t kDepthLimit = 1000;

  // The compiled pattern, or nullopt with `error` ("missing closing parenthesis at offset 3").
  static std::optional<ReplyRegex> compile(std::string_view pattern, std::string* error);

  std::size_t groups() const { return groups_; }  // capture groups, not counting $0
  // Searches `text`. On a match fills `out` with the whole match and each group (an unset group
  // is empty) and returns true; no match (or the bound hit): false.
  bool search(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
  std::size_t groups_ = 0;
};

}  // namespace dotgate::smtp
