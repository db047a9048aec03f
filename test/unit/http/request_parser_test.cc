// test/unit/http/request_parser_test.cc — lib/http/request_parser: a table of raw requests and the
// event log each must produce, replayed at every split point (two chunks) and byte by byte, so
// the result never depends on how the socket cut the input.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/http/request_parser.h"

using dotgate::http::Request;
using dotgate::http::RequestParser;

namespace {

// "GET /x 1.1 keep" per request, then "error: ..." if the parser failed, "partial" if a request
// was cut short, or nothing.
std::string log_of(const std::vector<Request>& requests, const RequestParser& p, bool with_reason) {
  std::string log;
  for (const auto& r : requests) {
    log += r.method + " " + r.target + " " + std::to_string(r.http_major) + "." + std::to_string(r.http_minor) +
           (r.keep_alive ? " keep\n" : " close\n");
  }
  if (p.failed()) log += with_reason ? "error: " + p.error() + "\n" : "error\n";
  else if (p.in_request()) log += "partial\n";
  return log;
}

std::string run_chunks(const std::vector<std::string_view>& chunks, bool with_reason) {
  RequestParser p;
  std::vector<Request> out;
  for (auto chunk : chunks) {
    bool ok = p.feed(chunk, out);
    CHECK(ok == !p.failed());
    if (!ok) {
      // Sticky: nothing more is delivered, even a valid request.
      std::vector<Request> more;
      CHECK_FALSE(p.feed("GET / HTTP/1.1\r\n\r\n", more));
      CHECK(more.empty());
      break;
    }
  }
  return log_of(out, p, with_reason);
}

struct Case {
  const char* name;
  std::string input;
  std::string log;
};

std::string repeat(char c, std::size_t n) { return std::string(n, c); }

// A request whose head (request line to the empty line, inclusive) is exactly `size` bytes.
std::string head_of_size(std::size_t size) {
  std::string start = "GET / HTTP/1.1\r\nX: ";
  std::string end = "\r\n\r\n";
  return start + repeat('a', size - start.size() - end.size()) + end;
}

}  // namespace

TEST_CASE("request parser: table replayed at every split point") {
  const std::string big_body(RequestParser::kMaxBodyBytes, 'b');
  const Case cases[] = {
      {"simple GET", "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", "GET /healthz 1.1 keep\n"},
      {"target with query", "GET /readyz?verbose=1 HTTP/1.1\r\n\r\n", "GET /readyz?verbose=1 1.1 keep\n"},
      {"pipelined", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
       "GET /healthz 1.1 keep\nGET /metrics 1.1 keep\n"},
      {"HEAD", "HEAD /metrics HTTP/1.1\r\n\r\n", "HEAD /metrics 1.1 keep\n"},
      {"other method", "DELETE /metrics HTTP/1.1\r\n\r\n", "DELETE /metrics 1.1 keep\n"},
      {"Connection: close", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET / 1.1 close\n"},
      {"keep-alive explicit", "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", "GET / 1.1 keep\n"},
      {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", "GET / 1.0 close\n"},
      {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET / 1.0 keep\n"},
      {"data after Connection: close",
       "GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n", "GET /a 1.1 close\nerror\n"},
      {"CRLF after Connection: close", "GET /a HTTP/1.0\r\n\r\n\r\n\r\n", "GET /a 1.0 close\n"},
      {"data after HTTP/1.0", "GET /a HTTP/1.0\r\n\r\nX", "GET /a 1.0 close\nerror\n"},
      {"small body discarded", "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /y HTTP/1.1\r\n\r\n",
       "POST /x 1.1 keep\nGET /y 1.1 keep\n"},
      {"chunked body discarded", "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
       "POST /x 1.1 keep\n"},
      {"body at the limit", "POST /x HTTP/1.1\r\nContent-Length: 65536\r\n\r\n" + big_body, "POST /x 1.1 keep\n"},
      {"body over the limit", "POST /x HTTP/1.1\r\nContent-Length: 65537\r\n\r\n" + big_body + "b", "error\n"},
      {"head at the limit", head_of_size(RequestParser::kMaxHeadBytes), "GET / 1.1 keep\n"},
      {"head over the limit", head_of_size(RequestParser::kMaxHeadBytes + 1), "error\n"},
      {"second head over the limit",
       "GET /a HTTP/1.1\r\n\r\n" + head_of_size(RequestParser::kMaxHeadBytes + 1), "GET /a 1.1 keep\nerror\n"},
      {"huge URL", "GET /" + repeat('u', 20000) + " HTTP/1.1\r\n\r\n", "error\n"},
      {"many headers", "GET / HTTP/1.1\r\n" + [] {
         std::string h;
         for (int i = 0; i < 2000; ++i) h += "A: b\r\n";
         return h;
       }() + "\r\n",
       "error\n"},
      {"malformed version", "GET / HTP/1.1\r\n\r\n", "error\n"},
      {"not a method", "BLAH / HTTP/1.1\r\n\r\n", "error\n"},
      {"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "error\n"},
      {"space in header name", "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "error\n"},
      {"bare LF", "GET / HTTP/1.1\nHost: x\n\n", "error\n"},
      // Content-Length with Transfer-Encoding is the classic smuggling vector: refused.
      {"CL and TE", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "error\n"},
      {"two Content-Length", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "error\n"},
      {"upgrade is not followed", "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
       "GET / 1.1 close\nerror\n"},
      {"cut short", "GET /healthz HTTP/1.1\r\nHo", "partial\n"},
      {"complete then cut short", "GET /a HTTP/1.1\r\n\r\nGET /b HT", "GET /a 1.1 keep\npartial\n"},
      {"empty", "", ""},
  };

  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    const std::string& in = c.input;
    CHECK(run_chunks({in}, false) == c.log);
    // Every split into two chunks. Inputs past a few KiB are split at a sample of points
    // (the split logic does not depend on the size; quadratic time would).
    std::size_t step = in.size() > 4096 ? 997 : 1;
    for (std::size_t i = 0; i <= in.size(); i += step) {
      CAPTURE(i);
      std::string_view v(in);
      REQUIRE(run_chunks({v.substr(0, i), v.substr(i)}, false) == c.log);
    }
    if (in.size() <= 4096) {
      std::vector<std::string_view> bytes;
      for (std::size_t i = 0; i < in.size(); ++i) bytes.push_back(std::string_view(in).substr(i, 1));
      CHECK(run_chunks(bytes, false) == c.log);
    }
  }
}

TEST_CASE("request parser: error messages say why") {
  CHECK(run_chunks({head_of_size(RequestParser::kMaxHeadBytes + 1)}, true) ==
        "error: request head larger than 8192 bytes\n");
  std::string body = "POST /x HTTP/1.1\r\nContent-Length: 70000\r\n\r\n" + std::string(70000, 'b');
  CHECK(run_chunks({body}, true) == "error: request body larger than 65536 bytes\n");
  CHECK(run_chunks({"GET / HTP/1.1\r\n\r\n"}, true).rfind("error: HPE_", 0) == 0);
  CHECK(run_chunks({"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"}, true) ==
        "GET / 1.1 close\nerror: protocol upgrade is not supported\n");
}

TEST_CASE("request parser: a slow head is counted across chunks") {
  // 8 KiB arriving one byte per read is still one head: refused at the first byte past the limit.
  std::string in = "GET / HTTP/1.1\r\nX: " + std::string(20000, 'a');
  RequestParser p;
  std::vector<Request> out;
  std::size_t fed = 0;
  while (fed < in.size() && p.feed(std::string_view(in).substr(fed, 1), out)) ++fed;
  CHECK(p.failed());
  CHECK(fed == RequestParser::kMaxHeadBytes);  // the 8193rd byte is the one refused
  CHECK(out.empty());
}
