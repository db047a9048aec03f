// lib/http/request_parser.h — HTTP/1.x request parser for the admin endpoint, over llhttp.
//
// Pure: bytes in, complete requests out; no sockets, no loop, no logging. Called by
// AdminServer (one parser per connection) and by the unit tests and fuzzers.
// Resumable across any split of the input: feed() takes whatever the socket delivered; pipelined
// requests in one chunk all come out of the same feed(), in order.
// Limits, because a client must not be able to grow our memory: a request head (request line
// and headers, up to the empty line) is at most kMaxHeadBytes; a body (admin requests have
// none) is read and discarded up to kMaxBodyBytes, then refused.
// Errors stick: after the first one feed() delivers nothing more until the parser is destroyed.
// Requests completed before the error in the same chunk are still delivered (answer them, then
// report the error: that is what a pipelining client expects).
// Non-copyable, non-movable: llhttp keeps a pointer back to this object.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>

namespace dotgate::http {

struct Request {
  std::string method;  // "GET", "HEAD", ... (llhttp's method name)
  std::string target;  // request-target as sent: "/metrics", "/readyz?x=1"
  int http_major = 1;
  int http_minor = 1;
  // llhttp_should_keep_alive: HTTP/1.1 unless "Connection: close", HTTP/1.0 only with
  // "Connection: keep-alive". False after an Upgrade/CONNECT: we never switch protocols, so the
  // bytes after it are not HTTP and the connection must end after the answer.
  bool keep_alive = true;
};

class RequestParser {
 public:
  static constexpr std::size_t kMaxHeadBytes = 8 * 1024;
  static constexpr std::size_t kMaxBodyBytes = 64 * 1024;

  RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses `data`, appending each completed request to `out`. Returns false if the parser is (now
  // or already) in error; `out` may still have received requests completed before the error.
  bool feed(std::string_view data, std::vector<Request>& out);

  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }  // empty unless failed()
  // True while part of a request has been received (EOF now would cut a request short).
  bool in_request() const { return in_message_; }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, std::size_t length);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t length);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t length);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t length);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  // Why llhttp_execute() returned HPE_PAUSED: set by the callback that paused, read by feed().
  enum class Pause { None, MessageBegin, HeadersComplete, LastMessageComplete };

  int count_head_span(const char* at, std::size_t length);
  bool check_after_last(std::string_view rest);
  void fail(std::string message);

  llhttp_t parser_;
  std::vector<Request>* out_ = nullptr;  // set during feed() only
  Request current_;
  Pause pause_ = Pause::None;
  bool in_message_ = false;
  bool in_head_ = false;
  // Head accounting: bytes of the head in earlier chunks, and where the head began in this one.
  std::size_t head_bytes_before_ = 0;
  const char* head_start_ = nullptr;
  std::size_t body_bytes_ = 0;
  bool after_last_ = false;  // a request that ends the connection was delivered
  bool failed_ = false;
  std::string error_;
};

}  // namespace dotgate::http
