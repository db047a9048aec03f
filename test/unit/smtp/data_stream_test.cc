// test/unit/smtp/data_stream_test.cc — DataStream: end of data, normalisation, stuffing, limits.
//
// llhttp-style: a table of raw input and the exact bytes expected downstream, each replayed whole,
// at every split point, at every pair of split points (short inputs) and one byte at a time.
// Every end-of-data variant of the 2023 SMTP smuggling disclosure is in the table, in both modes,
// and an exhaustive comparison against a line-by-line reference model covers all short inputs.
#include <doctest/doctest.h>

#include <random>

#include <string>
#include <string_view>
#include <vector>

#include "lib/smtp/data_stream.h"

using namespace std::string_literals;
using dotgate::smtp::BareLineEnding;
using dotgate::smtp::DataFault;
using dotgate::smtp::DataStream;
using dotgate::smtp::DataStreamLimits;

namespace {

// True when a receiver that knows nothing of dotgate would see the end of data somewhere in
// `out` (which follows DATA's own CRLF, hence the "\r\n" in front).
bool can_end_downstream(std::string_view out) {
  std::string s = "\r\n" + std::string(out);
  return s.find("\r\n.\r\n") != std::string::npos;
}

// Same, for a receiver that drops NUL octets before looking for the end of data.
bool can_end_downstream_dropping_nul(std::string_view out) {
  std::string s = "\r\n";
  for (char c : out) {
    if (c != '\0') s.push_back(c);
  }
  return s.find("\r\n.\r\n") != std::string::npos;
}

// A CR not followed by LF, or an LF not preceded by CR.
bool has_bare_line_ending(std::string_view out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\r' && (i + 1 == out.size() || out[i + 1] != '\n')) return true;
    if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) return true;
  }
  return false;
}

struct Result {
  std::string out;
  std::size_t consumed = 0;
  bool ended = false;
  DataFault fault = DataFault::None;
  std::uint64_t size = 0;

  bool operator==(const Result&) const = default;
};

// Feeds `input` cut at `cuts` (ascending offsets). Chunks after the end are not fed, as the
// Session would not: they are the next commands.
Result run(const DataStreamLimits& limits, std::string_view input, const std::vector<std::size_t>& cuts) {
  DataStream stream(limits);
  Result r;
  std::size_t start = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  for (std::size_t end : ends) {
    if (end < start) continue;
    auto p = stream.feed(input.substr(start, end - start), r.out);
    r.consumed += p.consumed;
    if (p.ended) {
      r.ended = true;
      break;
    }
    REQUIRE(p.consumed == end - start);  // before the end everything is consumed (state holds it)
    start = end;
  }
  CHECK(stream.ended() == r.ended);
  r.fault = stream.fault();
  r.size = stream.message_size();
  return r;
}

// Replays `input` whole, at every split point, every pair of split points (short inputs) and one
// byte at a time; every replay must give exactly `whole`.
Result replay(const DataStreamLimits& limits, std::string_view input) {
  Result whole = run(limits, input, {});
  for (std::size_t i = 0; i <= input.size(); ++i) {
    Result split = run(limits, input, {i});
    if (!(split == whole)) {
      FAIL_CHECK("split at " << i << " differs: out=" << doctest::toString(split.out)
                             << " consumed=" << split.consumed);
      return whole;
    }
  }
  if (input.size() <= 64) {
    for (std::size_t i = 0; i <= input.size(); ++i) {
      for (std::size_t j = i; j <= input.size(); ++j) {
        if (!(run(limits, input, {i, j}) == whole)) {
          FAIL_CHECK("split at " << i << "," << j << " differs");
          return whole;
        }
      }
    }
  }
  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < input.size(); ++i) bytewise.push_back(i);
  CHECK(run(limits, input, bytewise) == whole);
  return whole;
}

DataStreamLimits normalize() { return {}; }
DataStreamLimits reject() {
  DataStreamLimits l;
  l.bare_line_ending = BareLineEnding::Reject;
  return l;
}

struct Case {
  const char* name;
  std::string input;
  std::string out;
  std::size_t consumed;  // std::string::npos: all of input
  bool ended;
  DataFault fault;
};

void check_case(const DataStreamLimits& limits, const Case& c) {
  INFO("case: " << std::string(c.name));
  Result r = replay(limits, c.input);
  CHECK(r.out == c.out);
  CHECK(r.consumed == (c.consumed == std::string::npos ? c.input.size() : c.consumed));
  CHECK(r.ended == c.ended);
  CHECK(r.fault == c.fault);
  // The invariants hold for every case, faulted or not.
  CHECK_FALSE(can_end_downstream(r.out));
  CHECK_FALSE(can_end_downstream_dropping_nul(r.out));
  CHECK_FALSE(has_bare_line_ending(r.out));  // a fault cuts plain bytes, never a CRLF
}

constexpr auto npos = std::string::npos;

// The end-of-data variants of the SMTP smuggling disclosure (SEC Consult, December 2023): each is
// an end of data to some receiver; to dotgate none of them is.
const std::vector<std::string> kSmugglingEndings = {
    "\n.\n"s,   "\r.\r"s,   "\r\n.\n"s,   "\n.\r\n"s,       "\r\n.\r"s,
    "\r.\r\n"s, "\n.\r"s,   "\r\n\0.\r\n"s, "\r\n.\0\r\n"s,
};

}  // namespace

TEST_CASE("data stream: ordinary messages, both modes") {
  const std::vector<Case> cases = {
      {"empty message", ".\r\n", "", 3, true, DataFault::None},
      {"one line", "Hello\r\n.\r\n", "Hello\r\n", npos, true, DataFault::None},
      {"headers and body", "Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n", npos, true,
       DataFault::None},
      {"pipelined QUIT stays unconsumed", "Hi\r\n.\r\nQUIT\r\n", "Hi\r\n", 7, true, DataFault::None},
      {"pipelined MAIL after empty message", ".\r\nMAIL FROM:<a@b>\r\n", "", 3, true, DataFault::None},
      {"client dot-stuffing kept byte for byte", "..foo\r\n..\r\n...\r\n.bar\r\n.\r\n",
       "..foo\r\n..\r\n...\r\n.bar\r\n", npos, true, DataFault::None},
      {"dot not alone on its line", ". \r\n .\r\n.x\r\n.\r\n", ". \r\n .\r\n.x\r\n", npos, true,
       DataFault::None},
      {"empty lines", "\r\n\r\n.\r\n", "\r\n\r\n", npos, true, DataFault::None},
      {"unfinished: CR held at the end", "body\r\n.\r", "body\r\n", npos, false, DataFault::None},
      {"unfinished: dot held at the end", "body\r\n.", "body\r\n", npos, false, DataFault::None},
      {"unfinished: plain bytes go out", "body\r\nmo", "body\r\nmo", npos, false, DataFault::None},
      {"8-bit and NUL inside a line pass", "caf\xc3\xa9 a\0b\r\n.\r\n"s, "caf\xc3\xa9 a\0b\r\n"s, npos,
       true, DataFault::None},
      {"lines of NULs pass unstuffed", "\0\r\n\0\0\r\n\0a\r\n.\r\n"s, "\0\r\n\0\0\r\n\0a\r\n"s, npos,
       true, DataFault::None},
      {"NUL-lone-dot lines are stuffed", "\0.\r\n.\0\r\n\0.\0\r\n\0\0.\r\n.\r\n"s,
       ".\0.\r\n..\0\r\n.\0.\0\r\n.\0\0.\r\n"s, npos, true, DataFault::None},
      {"NUL line then real end", "\0\r\n.\r\n"s, "\0\r\n"s, npos, true, DataFault::None},
  };
  SUBCASE("normalize") {
    for (const auto& c : cases) check_case(normalize(), c);
  }
  SUBCASE("reject") {
    for (const auto& c : cases) check_case(reject(), c);
  }
}

TEST_CASE("data stream: bare line endings are normalised") {
  const std::vector<Case> cases = {
      {"bare LF lines", "a\nb\n\r\n.\r\n", "a\r\nb\r\n\r\n", npos, true, DataFault::None},
      {"bare CR line", "a\rb\r\n.\r\n", "a\r\nb\r\n", npos, true, DataFault::None},
      {"CR CR LF", "\r\r\n.\r\n", "\r\n\r\n", npos, true, DataFault::None},
      {"LF CR", "a\n\rb\r\n.\r\n", "a\r\n\r\nb\r\n", npos, true, DataFault::None},
      {"lone dot at the start then bare LF", ".\nx\r\n.\r\n", "..\r\nx\r\n", npos, true,
       DataFault::None},
      {"bare LF before real CRLF.CRLF is not an end", "a\n.\r\n.\r\n", "a\r\n..\r\n", npos, true,
       DataFault::None},
      {"bare CR, real CRLF, then the end", "a\r\r\n.\r\n", "a\r\n\r\n", npos, true, DataFault::None},
      {"bare CR after the dot is not an end", ".\rQUIT\r\n.\r\n", "..\r\nQUIT\r\n", npos, true,
       DataFault::None},
  };
  for (const auto& c : cases) check_case(normalize(), c);
}

TEST_CASE("data stream: bare line endings are a fault in reject mode") {
  const std::vector<Case> cases = {
      {"bare LF", "a\nb\r\n.\r\n", "a", npos, true, DataFault::BareLineEnding},
      {"bare CR", "ab\rc\r\n.\r\n", "ab", npos, true, DataFault::BareLineEnding},
      {"bare LF on the first line, nothing written", "\nb\r\n.\r\n", "", npos, true,
       DataFault::BareLineEnding},
      {"held dot not written", "x\r\n.\ny\r\n.\r\n", "x\r\n", npos, true, DataFault::BareLineEnding},
      {"pipelined command after a faulted message", "a\n.\r\n\r\n.\r\nQUIT\r\n", "a", 10, true,
       DataFault::BareLineEnding},
      {"unfinished after the fault", "a\nb\r\n.\nc", "a", npos, false, DataFault::BareLineEnding},
  };
  for (const auto& c : cases) check_case(reject(), c);
}

TEST_CASE("data stream: SMTP smuggling end-of-data variants never end the message") {
  for (std::size_t k = 0; k < kSmugglingEndings.size(); ++k) {
    const std::string& ending = kSmugglingEndings[k];
    INFO("variant " << k << ": " << doctest::toString(ending));
    const std::string smuggled = "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\n";
    // The smuggled commands stay message content; only the real CRLF.CRLF ends the message.
    const std::string input = "body" + ending + smuggled + ".\r\n";
    bool has_nul = ending.find('\0') != std::string::npos;
    std::string stuffed_line = !has_nul ? "..\r\n"s : ending[2] == '\0' ? ".\0.\r\n"s : "..\0\r\n"s;
    // Where the dot's line starts in out: after "body\r\n" whatever ended the body line.
    std::string expected = "body\r\n" + stuffed_line + smuggled;

    SUBCASE("normalize") {
      Result r = replay(normalize(), input);
      CHECK(r.out == expected);
      CHECK(r.ended);
      CHECK(r.consumed == input.size());
      CHECK(r.fault == DataFault::None);
      CHECK_FALSE(can_end_downstream(r.out));
      CHECK_FALSE(can_end_downstream_dropping_nul(r.out));
      CHECK_FALSE(has_bare_line_ending(r.out));
      // Without the real end, the message is still open.
      Result open = replay(normalize(), "body" + ending + smuggled);
      CHECK_FALSE(open.ended);
      CHECK(open.out == expected);
    }
    SUBCASE("reject") {
      Result r = replay(reject(), input);
      CHECK(r.ended);
      CHECK(r.consumed == input.size());
      CHECK_FALSE(can_end_downstream(r.out));
      CHECK_FALSE(can_end_downstream_dropping_nul(r.out));
      CHECK_FALSE(has_bare_line_ending(r.out));
      if (has_nul) {
        CHECK(r.fault == DataFault::None);
        CHECK(r.out == expected);
      } else {
        CHECK(r.fault == DataFault::BareLineEnding);
        // Only what preceded the first bare ending: "body", plus its CRLF when that was real
        // (the dot after it is held, never written).
        CHECK(r.out == (ending.rfind("\r\n", 0) == 0 ? "body\r\n" : "body"));
      }
      Result open = replay(reject(), "body" + ending + smuggled);
      CHECK_FALSE(open.ended);
    }
  }
}

TEST_CASE("data stream: the variants at the very start of the data") {
  // DATA's own CRLF precedes the first line, so "\n" or "\r" alone there behaves the same way.
  for (const char* first : {".\n", ".\r", ".\0\r\n"}) {
    std::string input = std::string(first, first[1] == '\0' ? 4 : 2) + "x\r\n.\r\n";
    INFO(doctest::toString(input));
    Result r = replay(normalize(), input);
    CHECK(r.ended);
    CHECK(r.consumed == input.size());
    CHECK(r.out == (first[1] == '\0' ? "..\0\r\nx\r\n"s : "..\r\nx\r\n"s));
  }
}

TEST_CASE("data stream: line length") {
  DataStreamLimits limits;
  limits.max_line_length = 10;  // octets including CRLF
  const std::vector<Case> cases = {
      {"exactly at the limit", "12345678\r\n.\r\n", "12345678\r\n", npos, true, DataFault::None},
      {"one over", "123456789\r\n.\r\n", "12345678", npos, true, DataFault::LineTooLong},
      {"far over, still consumed to the end", std::string(5000, 'x') + "\r\nmore\r\n.\r\nQUIT\r\n",
       "xxxxxxxx", 5000 + 2 + 6 + 3, true, DataFault::LineTooLong},
      {"bare LF line at the limit (counted as CRLF)", "12345678\n\r\n.\r\n", "12345678\r\n\r\n", npos,
       true, DataFault::None},
      {"stuffing counts: a 10-octet '.'+NULs line is 11 once stuffed", ".\0\0\0\0\0\0\0\r\n.\r\n"s, "", npos, true,
       DataFault::LineTooLong},
      {"held dot line of 9 octets, 10 once stuffed", ".\0\0\0\0\0\0\r\n.\r\n"s, "..\0\0\0\0\0\0\r\n"s,
       npos, true, DataFault::None},
      {"second line over, first written", "abc\r\n0123456789\r\n.\r\n", "abc\r\n01234567", npos, true,
       DataFault::LineTooLong},
  };
  for (const auto& c : cases) check_case(limits, c);

  SUBCASE("RFC 5321 default: 1000 octets including CRLF") {
    DataStreamLimits d;
    std::string ok(998, 'a');
    Result r = replay(d, ok + "\r\n.\r\n");
    CHECK(r.fault == DataFault::None);
    CHECK(r.out == ok + "\r\n");
    Result over = run(d, std::string(999, 'a') + "\r\n.\r\n", {});
    CHECK(over.fault == DataFault::LineTooLong);
    CHECK(over.ended);
    CHECK(over.out == ok);
  }
}

TEST_CASE("data stream: message size counts output octets") {
  DataStreamLimits limits;
  limits.max_message_size = 10;
  const std::vector<Case> cases = {
      {"exactly at the limit", "12345678\r\n.\r\n", "12345678\r\n", npos, true, DataFault::None},
      {"one over: a CRLF is never cut", "123456789\r\n.\r\n", "123456789", npos, true,
       DataFault::TooBig},
      {"over by plain bytes", "abc\r\n123456789\r\n.\r\nQUIT\r\n", "abc\r\n12345", 19, true,
       DataFault::TooBig},
      {"normalised CRLF counts 2", "a\nb\nc\nd\n\r\n.\r\n", "a\r\nb\r\nc\r\nd", npos, true,
       DataFault::TooBig},
  };
  for (const auto& c : cases) check_case(limits, c);
}

TEST_CASE("data stream: message_size is the wire size without the terminator") {
  Result r = replay(normalize(), "Hello\r\n.\r\nQUIT\r\n");
  CHECK(r.size == 7);
  CHECK(replay(normalize(), ".\r\n").size == 0);
  CHECK(replay(normalize(), "a\nb\r\n.\r\n").size == 5);
}

TEST_CASE("data stream: feed after the end and reset between messages") {
  DataStreamLimits limits;
  limits.bare_line_ending = BareLineEnding::Reject;
  DataStream stream(limits);
  std::string out;
  auto p = stream.feed("bad\nline\r\n.\r\nMAIL", out);
  CHECK(p.ended);
  CHECK(p.consumed == 13);
  CHECK(stream.fault() == DataFault::BareLineEnding);
  CHECK(out == "bad");
  p = stream.feed("more\r\n.\r\n", out);
  CHECK(p.ended);
  CHECK(p.consumed == 0);
  CHECK(out == "bad");

  stream.reset();
  CHECK_FALSE(stream.ended());
  CHECK(stream.fault() == DataFault::None);
  CHECK(stream.message_size() == 0);
  out.clear();
  // The new message starts after DATA's CRLF again: a leading ".\r\n" ends it at once.
  p = stream.feed(".\r\n", out);
  CHECK(p.ended);
  CHECK(out.empty());
  stream.reset();
  p = stream.feed("ok\r", out);
  CHECK_FALSE(p.ended);
  p = stream.feed("\n.", out);
  CHECK_FALSE(p.ended);
  CHECK(out == "ok\r\n");
  p = stream.feed("\r", out);
  CHECK_FALSE(p.ended);
  p = stream.feed("\nQUIT\r\n", out);
  CHECK(p.ended);
  CHECK(p.consumed == 1);
  CHECK(stream.fault() == DataFault::None);
  CHECK(out == "ok\r\n");
}

TEST_CASE("data stream: unstuff") {
  CHECK(dotgate::smtp::unstuff("..foo\r\n.\r\nbar\r\n..\r\n") == ".foo\r\n\r\nbar\r\n.\r\n");
  CHECK(dotgate::smtp::unstuff("") == "");
  CHECK(dotgate::smtp::unstuff("a.b\r\n") == "a.b\r\n");
}

namespace {

// An independent, whole-input model of the same rules (no limits): split into lines, decide each.
Result reference(std::string_view in, bool rejecting) {
  Result r;
  bool prev_real = true;
  bool faulted = false;
  std::size_t i = 0;
  std::string line;
  auto drop_nul = [](const std::string& s) {
    std::string d;
    for (char c : s) {
      if (c != '\0') d.push_back(c);
    }
    return d;
  };
  while (i < in.size()) {
    char c = in[i];
    bool terminated = false, real = false;
    std::size_t next = i + 1;
    if (c == '\r') {
      if (i + 1 == in.size()) break;  // undecided CR at the end of input
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
    if (!real && rejecting && !faulted) {
      faulted = true;
      r.fault = DataFault::BareLineEnding;
      std::string d = drop_nul(line);
      if (d != "" && d != ".") r.out += line;  // written before its ending was seen
    }
    if (!faulted) r.out += (drop_nul(line) == "." ? "." : "") + line + "\r\n";
    prev_real = real;
    line.clear();
  }
  if (!r.ended && !faulted) {
    std::string d = drop_nul(line);
    if (d != "" && d != ".") r.out += line;  // an unfinished line is written unless held
  }
  r.consumed = i;
  return r;
}

}  // namespace

TEST_CASE("data stream: exhaustive short inputs match the reference model") {
  const char alphabet[] = {'\r', '\n', '.', '\0', 'a'};
  DataStreamLimits unlimited;
  unlimited.max_line_length = 0;
  DataStreamLimits unlimited_reject = unlimited;
  unlimited_reject.bare_line_ending = BareLineEnding::Reject;
  std::size_t checked = 0;
  for (std::size_t len = 0; len <= 7; ++len) {
    std::size_t combos = 1;
    for (std::size_t k = 0; k < len; ++k) combos *= 5;
    for (std::size_t n = 0; n < combos; ++n) {
      std::string in;
      for (std::size_t k = 0, v = n; k < len; ++k, v /= 5) in.push_back(alphabet[v % 5]);
      for (bool rejecting : {false, true}) {
        const auto& limits = rejecting ? unlimited_reject : unlimited;
        Result want = reference(in, rejecting);
        Result got = run(limits, in, {});
        std::vector<std::size_t> bytewise;
        for (std::size_t k = 1; k < in.size(); ++k) bytewise.push_back(k);
        Result bytes = run(limits, in, bytewise);
        bool ok = got.out == want.out && got.ended == want.ended && got.fault == want.fault &&
                  (!got.ended || got.consumed == want.consumed) && bytes == got &&
                  !can_end_downstream(got.out) && !can_end_downstream_dropping_nul(got.out) &&
                  !has_bare_line_ending(got.out);
        if (!ok) {
          FAIL("input " << doctest::toString(in) << (rejecting ? " reject" : " normalize")
                        << ": got " << doctest::toString(got.out) << " want "
                        << doctest::toString(want.out));
        }
        ++checked;
      }
    }
  }
  CHECK(checked == 2 * (1 + 5 + 25 + 125 + 625 + 3125 + 15625 + 78125));
}

TEST_CASE("data stream: unstuff against a byte-at-a-time reference") {
  auto reference = [](std::string_view wire) {
    std::string out;
    bool line_start = true;
    for (char c : wire) {
      if (line_start && c == '.') {
        line_start = false;
        continue;
      }
      out.push_back(c);
      line_start = c == '\n';
    }
    return out;
  };
  std::mt19937 rng(99);
  const char alphabet[] = {'.', '.', '\n', '\r', 'a', ' '};
  for (int round = 0; round < 5000; ++round) {
    std::string wire;
    std::size_t len = rng() % 30;
    for (std::size_t k = 0; k < len; ++k) wire.push_back(alphabet[rng() % sizeof alphabet]);
    CHECK(dotgate::smtp::unstuff(wire) == reference(wire));
  }
  CHECK(dotgate::smtp::unstuff("..a\r\n.\r\n..\r\nb.\r\n") == ".a\r\n\r\n.\r\nb.\r\n");
}
