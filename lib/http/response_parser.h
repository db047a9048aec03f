// lib/http/response_parser.h — HTTP/1.x response parser for the HTTP client, over llhttp.
//
// Pure: bytes in, one Response out; no sockets, no loop, no logging. Owned by one client
// connection (lib/http/client.cc), reset() before each request; also used by the unit tests.
// Resumable across any split of the input. One parser reads one response: interim 1xx answers
// (100 Continue) are skipped; bytes after the final response are not parsed but flagged
// (extra_bytes()), because a server that sends more than it was asked for cannot be trusted with
// the next request on the same connection.
// Limits, because a verdict service must not be able to grow our memory: the head is at most
// kMaxHeadBytes, the body at most kMaxBodyBytes (a verdict is a small JSON object; 1 MiB is far
// beyond any honest answer).
// A response whose length is "until the connection closes" completes only in finish(), which the
// owner calls at EOF. Errors stick until reset().
// Non-copyable, non-movable: llhttp keeps a pointer back to this object.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <llhttp.h>

namespace dotgate::http {

struct Response {
  int status = 0;
  std::string content_type;  // as sent, empty if absent
  std::string body;
  // llhttp_should_keep_alive: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive.
  bool keep_alive = false;
};

class ResponseParser {
 public:
  static constexpr std::size_t kMaxHeadBytes = 16 * 1024;
  static constexpr std::size_t kMaxBodyBytes = 1024 * 1024;

  ResponseParser();
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  void reset();
  // Parses `data`. Returns false if the parser is (now or already) in error.
  bool feed(std::string_view data);
  // End of input (the peer closed). Completes a read-until-close body; otherwise a response cut
  // short becomes an error. Returns false if in error.
  bool finish();

  bool complete() const { return complete_; }
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  bool started() const { return started_; }          // any byte of a response was received
  bool extra_bytes() const { return extra_bytes_; }  // bytes followed the complete response
  const Response& response() const { return response_; }
  Response take() { return std::move(response_); }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_status(llhttp_t* p, const char* at, std::size_t length);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t length);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t length);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t length);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  int count_head(std::size_t length);
  void fail(std::string message);

  llhttp_t parser_;
  Response response_;
  std::string field_;        // current header name (lower case)
  bool field_done_ = false;  // field_ is complete; values follow
  std::size_t head_bytes_ = 0;
  bool started_ = false;
  bool complete_ = false;
  bool extra_bytes_ = false;
  bool failed_ = false;
  std::string error_;
};

}  // namespace dotgate::http
