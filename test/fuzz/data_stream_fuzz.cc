// test/fuzz/data_stream_fuzz.cc — libFuzzer target for DataStream, the SMTP smuggling defence.
//
// Beyond "no crash": aborts when an output could end the message downstream earlier than it ended
// here (a "\r\n.\r\n" after DATA's CRLF, also once NULs are dropped), holds a bare CR or LF, or
// differs when the same input is fed in three chunks at fuzzer-chosen split points; with no limits
// it must also match a whole-input, line-by-line model of the same rules.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lib/smtp/data_stream.h"

using dotgate::smtp::BareLineEnding;
using dotgate::smtp::DataFault;
using dotgate::smtp::DataStream;
using dotgate::smtp::DataStreamLimits;

namespace {

struct Result {
  std::string out;
  std::size_t consumed = 0;
  bool ended = false;
  DataFault fault = DataFault::None;
  std::uint64_t size = 0;
  bool operator==(const Result&) const = default;
};

Result run(const DataStreamLimits& limits, std::string_view in, std::size_t cut1, std::size_t cut2) {
  DataStream stream(limits);
  Result r;
  std::size_t ends[] = {cut1, cut2, in.size()};
  std::size_t start = 0;
  for (std::size_t end : ends) {
    auto p = stream.feed(in.substr(start, end - start), r.out);
    r.consumed += p.consumed;
    if (p.ended) {
      r.ended = true;
      break;
    }
    if (p.consumed != end - start) std::abort();
    start = end;
  }
  r.fault = stream.fault();
  r.size = stream.message_size();
  return r;
}

bool can_end_downstream(std::string_view out, bool drop_nul) {
  std::string s = "\r\n";
  for (char c : out) {
    if (!drop_nul || c != '\0') s.push_back(c);
  }
  return s.find("\r\n.\r\n") != std::string::npos;
}

bool has_bare_line_ending(std::string_view out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\r' && (i + 1 == out.size() || out[i + 1] != '\n')) return true;
    if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) return true;
  }
  return false;
}

std::string without_nul(std::string_view s) {
  std::string d;
  for (char c : s) {
    if (c != '\0') d.push_back(c);
  }
  return d;
}

// The rules of data_stream.h applied to whole lines (no limits): an independent second opinion.
Result reference(std::string_view in, bool rejecting) {
  Result r;
  bool prev_real = true, faulted = false;
  std::string line;
  std::size_t i = 0;
  while (i < in.size()) {
    char c = in[i];
    bool terminated = false, real = false;
    std::size_t next = i + 1;
    if (c == '\r') {
      if (i + 1 == in.size()) break;
      terminated = true;
      real = in[i + 1] == '\n';
      if (real) next = i + 2;
    } else if (c == '\n') {
      terminated = true;
    } else {
      line.push_back(c);
    }
    i = next;
    if (!terminated) continue;
    if (real && line == "." && prev_real) {
      r.ended = true;
      break;
    }
    std::string d = without_nul(line);
    if (!real && rejecting && !faulted) {
      faulted = true;
      if (d != "" && d != ".") r.out += line;
    }
    if (!faulted) r.out += (d == "." ? "." : "") + line + "\r\n";
    prev_real = real;
    line.clear();
  }
  std::string d = without_nul(line);
  if (!r.ended && !faulted && d != "" && d != ".") r.out += line;
  r.consumed = i;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  // Header bytes: mode and limits, then two split points.
  DataStreamLimits limits;
  limits.bare_line_ending = (data[0] & 1) ? BareLineEnding::Reject : BareLineEnding::Normalize;
  bool limited = data[0] & 2;
  limits.max_line_length = limited ? 3 + data[1] % 40 : 0;
  limits.max_message_size = (data[0] & 4) ? data[1] * 2u : 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 4, size - 4);
  std::size_t cut2 = in.empty() ? 0 : data[3] % (in.size() + 1);
  std::size_t cut1 = in.empty() ? 0 : data[2] % (cut2 + 1);

  Result whole = run(limits, in, in.size(), in.size());
  Result split = run(limits, in, cut1, cut2);
  if (!(whole == split)) std::abort();
  if (can_end_downstream(whole.out, false) || can_end_downstream(whole.out, true)) std::abort();
  if (has_bare_line_ending(whole.out)) std::abort();
  if (whole.consumed > in.size() || (!whole.ended && whole.consumed != in.size())) std::abort();
  if (whole.ended && in.substr(whole.consumed - 3, 3) != ".\r\n") std::abort();
  if (whole.ended && whole.size + 3 > whole.consumed) std::abort();
  if (limits.max_message_size != 0 && whole.out.size() > limits.max_message_size) std::abort();

  if (limits.max_line_length == 0 && limits.max_message_size == 0) {
    Result want = reference(in, limits.bare_line_ending == BareLineEnding::Reject);
    if (want.out != whole.out || want.ended != whole.ended) std::abort();
    if (whole.ended && want.consumed != whole.consumed) std::abort();
  }
  return 0;
}
