// lib/smtp/reply.h — an SMTP reply (code + text lines), its wire form, and the downstream reply parser.
//
// Every reply dotgate sends is a Reply serialised here, so every line of a multi-line reply carries
// the same code by construction (invariant 4). ReplyParser is pure and resumable: bytes from the
// downstream MTA in, complete replies out; an error sticks until reset().
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::smtp {

struct Reply {
  int code = 0;                    // 200..599
  std::vector<std::string> lines;  // each line's text, without the code and the '-'/' ' separator

  // "250-first\r\n250-second\r\n250 last\r\n"; a reply with no text lines is "250 \r\n"... never:
  // serialise writes "code\r\n" for an empty line list.
  std::string serialize() const;

  int klass() const { return code / 100; }  // 2, 3, 4, 5
  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }

  // The enhanced status code at the start of the first line ("4.7.0"), if any.
  std::optional<std::string> enhanced() const;

  // One-line reply made by dotgate itself: Reply::make(451, "4.7.0", "Try again later").
  // `enhanced` may be empty (greeting, EHLO, 354).
  static Reply make(int code, std::string_view enhanced, std::string_view text);
};

// RFC 5321 4.2: a reply code is three digits, first 2..5, second 0..5.
bool valid_reply_code(int code);

// True when `text` starts with an RFC 3463 enhanced status code (class.subject.detail followed
// by a space or end) whose class matches `code`'s first digit.
bool has_enhanced_code(int code, std::string_view text);

// Length of the RFC 3463 enhanced status code at the start of `text` (of any class), or 0.
std::size_t enhanced_code_length(std::string_view text);

// Parses downstream replies. Lines end at CRLF (LF alone tolerated). A line must be "ddd-" /
// "ddd " / "ddd" followed by text; anything else is a protocol error (the downstream is broken or
// not an SMTP server), as is a continuation line whose code is of another class than the
// first line's (within one class the first line's code is used for all lines).
// Caps: kMaxReplyLine octets per line and kMaxReplyLines lines per reply — a downstream that
// streams an endless reply must not grow our memory without bound.
class ReplyParser {
 public:
  static constexpr std::size_t kMaxReplyLine = 4096;
  static constexpr std::size_t kMaxReplyLines = 256;

  // Appends complete replies to `out`. Returns false on a protocol error (sticky: later calls
  // return false and produce nothing until reset()).
  bool feed(std::string_view bytes, std::vector<Reply>& out);
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  bool idle() const { return partial_.empty() && current_.lines.empty(); }  // no half reply held
  void reset();

 private:
  bool take_line(std::string_view line, std::vector<Reply>& out);
  std::string partial_;  // bytes of an unterminated line
  Reply current_;        // lines of a multi-line reply seen so far
  std::string error_;
};

}  // namespace dotgate::smtp
