// lib/smtp/reply.cc — Reply's wire form and enhanced codes; ReplyParser for downstream replies.
//
// Reply::serialize is the one place a reply becomes bytes, so every line carries the same code
// (invariant 4). ReplyParser is owned by the DownstreamSide: it holds at most one partial line
// (kMaxReplyLine) and one partial reply (kMaxReplyLines); a protocol error sticks until reset().
#include "lib/smtp/reply.h"

#include <cstdio>
#include <utility>

namespace dotgate::smtp {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

// class "." 1*3digit "." 1*3digit, followed by a space or the end.
std::size_t enhanced_code_length(std::string_view text) {
  if (text.size() < 5) return 0;
  if (text[0] != '2' && text[0] != '4' && text[0] != '5') return 0;
  if (text[1] != '.') return 0;
  std::size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    std::size_t start = i;
    while (i < text.size() && is_digit(text[i]) && i - start < 4) ++i;
    std::size_t digits = i - start;
    if (digits < 1 || digits > 3) return 0;
    if (part == 0) {
      if (i >= text.size() || text[i] != '.') return 0;
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ') return 0;
  return i;
}

namespace {

void append_line(std::string& out, int code, char separator, std::string_view text) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%03d", code);
  out.append(buf, 3);
  if (separator == ' ' && text.empty()) {
    out.append("\r\n");  // RFC 5321 4.2: the last line's text is optional ("250\r\n")
    return;
  }
  out.push_back(separator);
  // Text comes from the downstream or from policies (config, HTTP verdicts): a CR or LF in it
  // would let them inject a whole extra reply line to the client. They become spaces.
  for (char c : text) out.push_back((c == '\r' || c == '\n' || c == '\0') ? ' ' : c);
  out.append("\r\n");
}

}  // namespace

std::string Reply::serialize() const {
  std::string out;
  if (lines.empty()) {
    append_line(out, code, ' ', {});
    return out;
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    append_line(out, code, i + 1 == lines.size() ? ' ' : '-', lines[i]);
  }
  return out;
}

std::optional<std::string> Reply::enhanced() const {
  if (lines.empty()) return std::nullopt;
  std::size_t n = enhanced_code_length(lines.front());
  if (n == 0) return std::nullopt;
  return lines.front().substr(0, n);
}

Reply Reply::make(int code, std::string_view enhanced, std::string_view text) {
  Reply reply;
  reply.code = code;
  std::string line;
  if (!enhanced.empty()) {
    line.assign(enhanced);
    if (!text.empty()) line.push_back(' ');
  }
  line.append(text);
  reply.lines.push_back(std::move(line));
  return reply;
}

bool valid_reply_code(int code) {
  return code >= 200 && code <= 599 && (code / 10) % 10 <= 5;
}

bool has_enhanced_code(int code, std::string_view text) {
  return enhanced_code_length(text) != 0 && text[0] - '0' == code / 100;
}

bool ReplyParser::feed(std::string_view bytes, std::vector<Reply>& out) {
  if (failed()) return false;
  while (!bytes.empty()) {
    std::size_t lf = bytes.find('\n');
    std::string_view chunk = bytes.substr(0, lf);
    // Cap before buffering: a downstream streaming an endless line must not grow our memory.
    // The limit counts the terminator, so kMaxReplyLine octets still without an LF are over it.
    bool too_long = lf == std::string_view::npos
                        ? partial_.size() + chunk.size() >= kMaxReplyLine
                        : partial_.size() + chunk.size() + 1 > kMaxReplyLine;
    if (too_long) {
      error_ = "reply line too long";
      partial_.clear();
      current_ = Reply{};
      return false;
    }
    if (lf == std::string_view::npos) {
      partial_.append(chunk);
      return true;
    }
    bytes.remove_prefix(lf + 1);
    bool ok;
    if (partial_.empty()) {
      ok = take_line(chunk, out);
    } else {
      partial_.append(chunk);
      std::string line = std::move(partial_);
      partial_.clear();
      ok = take_line(line, out);
    }
    if (!ok) {
      partial_.clear();
      current_ = Reply{};
      return false;
    }
  }
  return true;
}

bool ReplyParser::take_line(std::string_view line, std::vector<Reply>& out) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
    error_ = "reply line does not start with a three-digit code";
    return false;
  }
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (!valid_reply_code(code)) {
    error_ = "invalid reply code " + std::string(line.substr(0, 3));
    return false;
  }
  bool last;
  std::string_view text;
  if (line.size() == 3) {
    last = true;
  } else if (line[3] == ' ' || line[3] == '-') {
    last = line[3] == ' ';
    text = line.substr(4);
  } else {
    error_ = "reply code not followed by a space or '-'";
    return false;
  }
  if (!current_.lines.empty() && code != current_.code) {
    // RFC 5321 4.2.1 wants one code on every line; real MTAs slip (250-/251-). Within one class
    // the meaning is clear, so the first line's code stands for all. Across classes (250- then
    // 550) nobody can say whether the command succeeded: the downstream is broken.
    if (code / 100 != current_.code / 100) {
      error_ = "continuation line with a reply code of another class";
      return false;
    }
    code = current_.code;
  }
  if (current_.lines.size() >= kMaxReplyLines) {
    error_ = "reply has too many lines";
    return false;
  }
  current_.code = code;
  current_.lines.emplace_back(text);
  if (last) {
    out.push_back(std::move(current_));
    current_ = Reply{};
  }
  return true;
}

void ReplyParser::reset() {
  partial_.clear();
  current_ = Reply{};
  error_.clear();
}

}  // namespace dotgate::smtp
