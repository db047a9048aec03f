// test/unit/http/response_parser_test.cc — lib/http/response_parser: a table of raw responses and
// the summary each must produce, replayed at every split point (two chunks) and byte by byte, so
// the result never depends on how the socket cut the input. EOF (finish()) is part of each case.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/http/response_parser.h"

using dotgate::http::ResponseParser;

namespace {

// "200 keep body=<...>" / "error" / "partial", plus " extra" when bytes followed the response.
std::string summary(const ResponseParser& p) {
  if (p.failed()) return "error";
  if (!p.complete()) return "partial";
  const auto& r = p.response();
  return std::to_string(r.status) + (r.keep_alive ? " keep" : " close") + " type=" + r.content_type +
         " body=" + r.body + (p.extra_bytes() ? " extra" : "");
}

std::string run(const std::vector<std::string_view>& chunks, bool eof) {
  ResponseParser p;
  for (auto c : chunks)
    if (!p.feed(c)) break;
  if (eof) p.finish();
  return summary(p);
}

struct Case {
  const char* name;
  std::string input;
  bool eof;
  std::string expect;
};

}  // namespace

TEST_CASE("response parser: table replayed at every split point") {
  const std::string json = R"({"action":"accept"})";
  const Case cases[] = {
      {"content-length", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n" + json, false,
       "200 keep type=application/json body=" + json},
      {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false,
       "200 keep type= body=hello"},
      {"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false,
       "200 close type= body=ok"},
      {"read until close", "HTTP/1.1 200 OK\r\n\r\nuntil eof", true, "200 close type= body=until eof"},
      {"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false, "200 close type= body=x"},
      {"100 continue skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", false,
       "503 keep type= body="},
      {"extra bytes", "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", false, "204 keep type= body= extra"},
      {"cut short in head", "HTTP/1.1 200 OK\r\nContent-Le", true, "error"},
      {"cut short in body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true, "error"},
      {"waiting for body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false, "partial"},
      {"garbage", "hello there\r\n\r\n", false, "error"},
      {"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false,
       "error"},
      {"nothing at all", "", true, "error"},
      {"body over the cap", "HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n" + std::string(1048577, 'b'), false,
       "error"},
      {"head over the cap", "HTTP/1.1 200 OK\r\nX: " + std::string(20000, 'h') + "\r\n\r\n", false, "error"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    const std::string& in = c.input;
    CHECK(run({in}, c.eof) == c.expect);
    std::size_t step = in.size() > 4096 ? 9973 : 1;
    for (std::size_t i = 0; i <= in.size(); i += step) {
      CAPTURE(i);
      std::string_view v(in);
      REQUIRE(run({v.substr(0, i), v.substr(i)}, c.eof) == c.expect);
    }
    if (in.size() <= 4096) {
      std::vector<std::string_view> bytes;
      for (std::size_t i = 0; i < in.size(); ++i) bytes.push_back(std::string_view(in).substr(i, 1));
      CHECK(run(bytes, c.eof) == c.expect);
    }
  }
}

TEST_CASE("response parser: reset reads the next response; errors say why") {
  ResponseParser p;
  CHECK(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"));
  CHECK(p.complete());
  p.reset();
  CHECK_FALSE(p.started());
  CHECK(p.feed("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"));
  CHECK(p.response().status == 500);
  p.reset();
  CHECK_FALSE(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + std::string(1048577, 'x')));
  CHECK(p.error() == "response body larger than 1048576 bytes");
  CHECK_FALSE(p.feed("more"));  // sticky
}
