// lib/smtp/data_stream.h — the DATA phase: client bytes after 354 in, the bytes for the downstream out.
//
// Pure and resumable: feed() any split of the input and the output is the same (tests replay every
// split point). What it guarantees (DESIGN.md invariant 3, the 2023 SMTP smuggling disclosure):
//   - the message ends only at CRLF "." CRLF, where the CRLF before the dot is the terminator of a
//     real line or the CRLF of the DATA command itself (an empty message);
//   - `out` never holds a bare CR or bare LF: with BareLineEnding::Normalize each becomes CRLF;
//     with ::Reject the first one is a fault and nothing after it is written;
//   - no line in `out` can end the message early downstream: a line that is only "." but did not
//     end the message here (it came after a bare line ending, or was followed by one) is written
//     dot-stuffed as "..". More generally, any line that is a lone dot once its NULs are removed
//     ("\0.", ".\0", "\0\0.\0", ...) gets a leading "." ("." + line), so a receiver that drops
//     NUL still does not see a lone dot; a line of only NULs is left alone (a "." in front of it
//     is exactly what would make it a lone dot to such a receiver). Receivers remove one leading
//     dot from any line, so "\0." keeps its content; ".\0" becomes ".\0" for them instead of "\0"
//     (NUL is not allowed in SMTP DATA anyway: safety over fidelity there);
//   - every other byte passes through unchanged, client dot-stuffing included;
//   - `out` excludes the terminating ".\r\n" (the Session holds it) and includes the CRLF before it.
// Faults (line too long, bare line ending in Reject mode, message over max_message_size) stop all
// further output; feed() still consumes input up to the real end so the Session can answer the dot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dotgate::smtp {

enum class BareLineEnding { Normalize, Reject };

struct DataStreamLimits {
  // Octets of a line as written downstream, CRLF and any stuffing dot included (RFC 5321
  // 4.5.3.1.6: the MTA behind us enforces 1000 too). 0: unlimited.
  std::size_t max_line_length = 1000;
  std::uint64_t max_message_size = 0;        // 0: unlimited; counted in octets written to out
  BareLineEnding bare_line_ending = BareLineEnding::Normalize;
};

enum class DataFault { None, LineTooLong, BareLineEnding, TooBig };

class DataStream {
 public:
  explicit DataStream(DataStreamLimits limits = {}) : limits_(limits) {}

  struct Progress {
    std::size_t consumed = 0;  // input bytes used; after `ended`, the rest is pipelined commands
    bool ended = false;        // CRLF.CRLF seen
  };
  Progress feed(std::string_view input, std::string& out);

  DataFault fault() const { return fault_; }
  std::uint64_t message_size() const { return size_; }  // octets of the message as received (wire form)
  bool ended() const { return ended_; }
  void reset();  // ready for the next message, same limits

 private:
  // A byte-at-a-time machine (data_stream.cc): runs of plain bytes are copied in bulk, which
  // gives the same output as one byte at a time because emit() may cut a run anywhere but
  // never a CRLF.
  bool end_line(bool real_crlf, std::string& out);  // true: this line was the terminating dot
  void content_byte(char c, std::string& out);      // a byte at the start of a line
  void emit(std::string_view bytes, std::string& out);
  void emit_crlf(std::string& out);
  void emit_held(bool stuff, std::string& out);
  void set_fault(DataFault fault);
  bool line_over_limit(std::size_t length) const;

  DataStreamLimits limits_;
  DataFault fault_ = DataFault::None;
  std::uint64_t size_ = 0;      // input octets, terminator excluded once ended
  std::uint64_t written_ = 0;   // octets appended to out (max_message_size)
  bool ended_ = false;
  bool cr_pending_ = false;     // a CR was the last byte: CRLF or bare CR depends on the next one
  bool prev_line_crlf_ = true;  // the previous line ended with a real CRLF (DATA's own CRLF at start)
  bool in_body_ = false;        // this line can no longer be a lone dot: bytes go straight out
  std::size_t line_length_ = 0; // content octets of the current line as received
  // Until in_body_, the line so far is NULs and at most one dot, held back as counts (no buffer
  // to grow): held_nul_before_ NULs, then "." if held_dot_, then held_nul_after_ NULs.
  std::size_t held_nul_before_ = 0;
  bool held_dot_ = false;
  std::size_t held_nul_after_ = 0;
};

// Removes SMTP dot-stuffing from a wire-form message (for verdict services that want the message):
// one leading "." of every line goes. `wire` is DataStream output (CRLF lines, no terminator).
std::string unstuff(std::string_view wire);

}  // namespace dotgate::smtp
