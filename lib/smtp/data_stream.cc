// lib/smtp/data_stream.cc — the DATA phase state machine (SMTP smuggling defence, invariant 3).
//
// Called by the Session with the client's bytes after 354; it writes the downstream's bytes to
// `out` and reports where the message really ended. Owns only a few counters and flags: nothing
// is buffered but what the caller passes, whatever the input (a line of NULs is held as a count).
//
// How it reads its input, one byte at a time (every split of the input gives the same result):
//   - CR is never content: it is held (cr_pending_) until the next byte says whether it is half of
//     a CRLF or a bare CR. A CR at the end of a feed() stays held for the next call.
//   - LF after a held CR ends a line with a real CRLF; any other LF is bare; a held CR followed by
//     anything but LF is bare. A bare ending is written as CRLF (Normalize) or is a fault (Reject).
//   - At the start of a line, NULs and one dot are held (as counts) until the line proves to be
//     something else; then they go out unchanged. If the line ends while still held:
//       "." exactly, ended by a real CRLF, after a real CRLF (or at the start): the end of data;
//       a dot among NULs (or a "." that did not qualify): written as "." + the line, stuffed;
//       NULs only: written as they are.
//   - Everything else is copied through.
#include "lib/smtp/data_stream.h"

#include <cstring>

namespace dotgate::smtp {

DataStream::Progress DataStream::feed(std::string_view input, std::string& out) {
  Progress progress;
  if (ended_) {
    progress.ended = true;
    return progress;
  }
  std::size_t i = 0;
  const std::size_t n = input.size();
  while (i < n) {
    char c = input[i];
    if (cr_pending_) {
      cr_pending_ = false;
      if (c == '\n') {
        ++i;
        if (end_line(true, out)) {
          // The terminating ".\r\n" is not part of the message; the rest is pipelined commands.
          size_ += i;
          size_ -= 3;
          progress.consumed = i;
          progress.ended = true;
          return progress;
        }
        continue;
      }
      end_line(false, out);  // bare CR; `c` starts the next line and is handled below
    }
    if (c == '\r') {
      cr_pending_ = true;
      ++i;
      continue;
    }
    if (c == '\n') {
      end_line(false, out);
      ++i;
      continue;
    }
    if (!in_body_) {
      content_byte(c, out);
      ++i;
      continue;
    }
    // Fast path: a run of plain bytes in the middle of a line.
    // Two memchr scans, not find_first_of: libstdc++'s find_first_of calls memchr once per
    // input byte, which made this loop the daemon's hottest spot.
    const char* begin = input.data() + i;
    const char* end = input.data() + n;
    const char* lf = static_cast<const char*>(std::memchr(begin, '\n', static_cast<std::size_t>(end - begin)));
    const char* stop = lf ? lf : end;
    const char* cr = static_cast<const char*>(std::memchr(begin, '\r', static_cast<std::size_t>(stop - begin)));
    std::size_t j = static_cast<std::size_t>((cr ? cr : stop) - input.data());
    std::string_view run = input.substr(i, j - i);
    if (fault_ == DataFault::None && line_over_limit(line_length_ + run.size())) {
      // Write what one byte at a time would have written before the fault.
      std::size_t fits = limits_.max_line_length >= line_length_ + 2
                             ? limits_.max_line_length - line_length_ - 2
                             : 0;
      emit(run.substr(0, fits), out);
      set_fault(DataFault::LineTooLong);
    } else {
      emit(run, out);
    }
    line_length_ += run.size();
    i = j;
  }
  size_ += n;
  progress.consumed = n;
  return progress;
}

bool DataStream::line_over_limit(std::size_t length) const {
  return limits_.max_line_length != 0 && length + 2 > limits_.max_line_length;
}

void DataStream::content_byte(char c, std::string& out) {
  ++line_length_;
  if (fault_ == DataFault::None && line_over_limit(line_length_)) set_fault(DataFault::LineTooLong);
  if (c == '\0') {
    ++(held_dot_ ? held_nul_after_ : held_nul_before_);
    return;
  }
  if (c == '.' && !held_dot_) {
    held_dot_ = true;
    return;
  }
  // A second dot ("..foo", client stuffing) or any other byte: this line is not a lone dot.
  emit_held(false, out);
  emit(std::string_view(&c, 1), out);
  in_body_ = true;
}

bool DataStream::end_line(bool real_crlf, std::string& out) {
  bool lone_dot = !in_body_ && held_dot_ && held_nul_before_ == 0 && held_nul_after_ == 0;
  if (real_crlf && lone_dot && prev_line_crlf_) {
    ended_ = true;
    return true;
  }
  // Anything that could still read as a lone dot to some receiver gets stuffed (see the header).
  bool stuff = !in_body_ && held_dot_;
  if (!real_crlf && limits_.bare_line_ending == BareLineEnding::Reject) {
    set_fault(DataFault::BareLineEnding);
  }
  if (line_over_limit(line_length_ + (stuff ? 1 : 0))) set_fault(DataFault::LineTooLong);
  if (!in_body_) emit_held(stuff, out);
  emit_crlf(out);
  prev_line_crlf_ = real_crlf;
  in_body_ = false;
  line_length_ = 0;
  held_nul_before_ = 0;
  held_dot_ = false;
  held_nul_after_ = 0;
  return false;
}

void DataStream::emit_held(bool stuff, std::string& out) {
  if (fault_ != DataFault::None) return;
  std::string held;
  if (stuff) held.push_back('.');
  held.append(held_nul_before_, '\0');
  if (held_dot_) held.push_back('.');
  held.append(held_nul_after_, '\0');
  emit(held, out);
}

void DataStream::emit(std::string_view bytes, std::string& out) {
  if (fault_ != DataFault::None || bytes.empty()) return;
  if (limits_.max_message_size != 0 && written_ + bytes.size() > limits_.max_message_size) {
    // Plain bytes may be cut anywhere (one byte at a time would have written these).
    std::size_t fits = static_cast<std::size_t>(limits_.max_message_size - written_);
    out.append(bytes.substr(0, fits));
    written_ += fits;
    set_fault(DataFault::TooBig);
    return;
  }
  out.append(bytes);
  written_ += bytes.size();
}

void DataStream::emit_crlf(std::string& out) {
  if (fault_ != DataFault::None) return;
  // A CRLF is never cut: half of one would be a bare CR in out.
  if (limits_.max_message_size != 0 && written_ + 2 > limits_.max_message_size) {
    set_fault(DataFault::TooBig);
    return;
  }
  out.append("\r\n");
  written_ += 2;
}

void DataStream::set_fault(DataFault fault) {
  if (fault_ == DataFault::None) fault_ = fault;
}

void DataStream::reset() { *this = DataStream(limits_); }

std::string unstuff(std::string_view wire) {
  // A line at a time with memchr (5x faster per MiB than a byte loop): verdict services read
  // every message through here.
  std::string out(wire.size(), '\0');
  std::size_t i = 0, w = 0;
  const std::size_t n = wire.size();
  while (i < n) {  // i is at the start of a line
    if (wire[i] == '.') ++i;
    const void* nl = std::memchr(wire.data() + i, '\n', n - i);
    std::size_t end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - wire.data()) + 1 : n;
    std::memcpy(out.data() + w, wire.data() + i, end - i);
    w += end - i;
    i = end;
  }
  out.resize(w);
  return out;
}

}  // namespace dotgate::smtp
