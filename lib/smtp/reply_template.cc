// lib/smtp/reply_template.cc — parsing and expanding reply templates (see reply_template.h).
//
// Pure: no allocation beyond the returned values, no state between calls. parse() is called at
// config load, expand() by ReplyRules::apply for each reply a rule rewrites.
#include "lib/smtp/reply_template.h"

namespace dotgate::smtp {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Printable ASCII, tab, and any octet >= 0x80 (UTF-8 text is fine in a reply: SMTPUTF8).
bool is_literal_octet(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// Appends up to `room` octets of `text`, never ending inside a UTF-8 sequence. False when cut.
bool append_capped(std::string& out, std::string_view text) {
  std::size_t room = ReplyTemplate::kMaxOutput - out.size();
  if (text.size() <= room) {
    out.append(text);
    return true;
  }
  std::size_t n = room;
  // Back off over continuation octets (10xxxxxx) and the lead octet they belong to.
  if (n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) {
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  }
  out.append(text.substr(0, n));
  return false;
}

}  // namespace

std::optional<ReplyTemplate> ReplyTemplate::parse(std::string_view text, std::string* error) {
  auto fail = [&](std::size_t at, const std::string& why) -> std::optional<ReplyTemplate> {
    if (error) *error = why + " at offset " + std::to_string(at);
    return std::nullopt;
  };
  ReplyTemplate t;
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    Piece p;
    p.literal = std::move(literal);
    literal.clear();
    t.pieces_.push_back(std::move(p));
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$') {
      if (!is_literal_octet(static_cast<unsigned char>(c))) return fail(i, "control character");
      literal.push_back(c);
      continue;
    }
    if (i + 1 >= text.size()) return fail(i, "'$' at the end (write $$ for a dollar)");
    char next = text[i + 1];
    if (next == '$') {
      literal.push_back('$');
      ++i;
      continue;
    }
    std::size_t group = 0;
    if (is_digit(next)) {
      group = static_cast<std::size_t>(next - '0');  // one digit: "$10" is $1 then "0", as in Perl
      ++i;
    } else if (next == '{') {
      std::size_t j = i + 2, digits = 0;
      while (j < text.size() && is_digit(text[j]) && digits < 3) {
        group = group * 10 + static_cast<std::size_t>(text[j] - '0');
        ++j;
        ++digits;
      }
      if (digits == 0 || j >= text.size() || text[j] != '}') return fail(i, "expected ${number}");
      if (group > kMaxGroup) return fail(i, "group number over " + std::to_string(kMaxGroup));
      i = j;
    } else {
      return fail(i, "'$' must be followed by a digit, {number} or $");
    }
    flush();
    Piece p;
    p.is_group = true;
    p.group = group;
    t.pieces_.push_back(p);
    if (group > t.max_group_) t.max_group_ = group;
  }
  flush();
  return t;
}

bool ReplyTemplate::starts_with_original() const {
  return !pieces_.empty() && pieces_.front().is_group && pieces_.front().group == 0;
}

std::string_view ReplyTemplate::leading_literal() const {
  if (pieces_.empty() || pieces_.front().is_group) return {};
  return pieces_.front().literal;
}

std::string ReplyTemplate::expand(std::span<const std::string_view> groups) const {
  std::string out;
  for (const Piece& p : pieces_) {
    std::string_view part;
    if (!p.is_group) part = p.literal;
    else if (p.group < groups.size()) part = groups[p.group];
    if (!append_capped(out, part)) break;
  }
  return out;
}

}  // namespace dotgate::smtp
