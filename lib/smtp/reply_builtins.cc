// lib/smtp/reply_builtins.cc — the built-in reply rewrites (see reply_builtins.h for the order
// and the reasons). Pure; owns nothing.
#include "lib/smtp/reply_builtins.h"

#include <string>

namespace dotgate::smtp {
namespace {

bool is_domain_octet(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

// "mx.example.org" or "[192.0.2.1]": what RFC 5321 4.3.1 puts first in a greeting. A word without
// a dot ("ESMTP", "Service") is text, not a name, and stays.
bool looks_like_domain(std::string_view word) {
  if (word.size() >= 2 && word.front() == '[' && word.back() == ']') return true;
  if (word.find('.') == std::string_view::npos) return false;
  for (char c : word)
    if (!is_domain_octet(c)) return false;
  return true;
}

}  // namespace

bool normalise_greeting_code(Reply& reply) {
  int before = reply.code;
  switch (reply.klass()) {
    case 2: reply.code = 220; break;
    case 5: reply.code = 554; break;
    default: reply.code = 421; break;
  }
  return reply.code != before;
}

bool hide_greeting_banner(Reply& reply, std::string_view hostname) {
  if (reply.code == 220) {
    std::string line = std::string(hostname) + " ESMTP";
    if (reply.lines.size() == 1 && reply.lines.front() == line) return false;
    reply.lines.assign(1, std::move(line));
    return true;
  }
  if (reply.lines.empty()) return false;
  std::string& first = reply.lines.front();
  std::string_view word = std::string_view(first).substr(0, first.find(' '));
  if (!looks_like_domain(word) || word == hostname) return false;
  first.replace(0, word.size(), hostname);
  return true;
}

bool hide_ehlo_name(Reply& reply, std::string_view hostname) {
  if (reply.klass() != 2) return false;
  if (reply.lines.empty()) reply.lines.emplace_back();
  if (reply.lines.front() == hostname) return false;
  reply.lines.front().assign(hostname);
  return true;
}

bool soft_bounce(Reply& reply) {
  if (reply.klass() != 5) return false;
  for (auto& line : reply.lines)
    if (has_enhanced_code(reply.code, line)) line[0] = '4';
  // 421 would tell the client the server is closing the connection, which it is not doing.
  reply.code = reply.code == 521 ? 450 : reply.code - 100;
  return true;
}

bool add_enhanced_codes(Reply& reply) {
  int klass = reply.klass();
  if (klass != 2 && klass != 4 && klass != 5) return false;  // 354: no enhanced code exists
  bool changed = false;
  if (reply.lines.empty()) {
    reply.lines.emplace_back();
    changed = true;
  }
  // RFC 2034 4: the enhanced code is on every line. Lines without one take the first line's,
  // or X.0.0 (class only, nothing more specific is known) when the first line has none either.
  std::string code = has_enhanced_code(reply.code, reply.lines.front())
                         ? *reply.enhanced()
                         : std::to_string(klass) + ".0.0";
  for (auto& line : reply.lines) {
    if (has_enhanced_code(reply.code, line)) continue;
    line = line.empty() ? code : code + " " + line;
    changed = true;
  }
  return changed;
}

}  // namespace dotgate::smtp
