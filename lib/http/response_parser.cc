// lib/http/response_parser.cc — ResponseParser: llhttp callbacks turned into one Response.
//
// See response_parser.h for the contract. The head limit counts the bytes of the status text,
// header names and header values as llhttp hands them over (plus a fixed allowance per span for
// the syntax around them), so a server streaming an endless header is cut off as soon as it
// crosses the limit. The final response pauses llhttp in on_message_complete: whatever follows
// it in the same chunk is not parsed, only flagged.
// No llhttp lenient flag is set: a verdict answer that two parsers could read differently is
// malformed, and malformed answers follow the policy's on_error.
#include "lib/http/response_parser.h"

#include <cctype>

namespace dotgate::http {

namespace {
ResponseParser* self(llhttp_t* p) { return static_cast<ResponseParser*>(p->data); }
constexpr std::size_t kSpanOverhead = 4;  // ": " and CRLF around each name/value, roughly
}  // namespace

const llhttp_settings_t& ResponseParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &ResponseParser::on_message_begin;
    s.on_status = &ResponseParser::on_status;
    s.on_header_field = &ResponseParser::on_header_field;
    s.on_header_value = &ResponseParser::on_header_value;
    s.on_headers_complete = &ResponseParser::on_headers_complete;
    s.on_body = &ResponseParser::on_body;
    s.on_message_complete = &ResponseParser::on_message_complete;
    return s;
  }();
  return s;
}

ResponseParser::ResponseParser() { reset(); }

void ResponseParser::reset() {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
  response_ = Response{};
  field_.clear();
  field_done_ = false;
  head_bytes_ = 0;
  started_ = complete_ = extra_bytes_ = failed_ = false;
  error_.clear();
}

void ResponseParser::fail(std::string message) {
  if (failed_) return;
  failed_ = true;
  error_ = std::move(message);
}

bool ResponseParser::feed(std::string_view data) {
  if (failed_) return false;
  if (data.empty()) return true;
  if (complete_) {
    extra_bytes_ = true;
    return true;
  }
  started_ = true;
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_OK) return true;
  if (err == HPE_PAUSED) {
    // Only on_message_complete of the final response pauses.
    const char* pos = llhttp_get_error_pos(&parser_);
    if (pos != data.data() + data.size()) extra_bytes_ = true;
    return true;
  }
  if (err == HPE_PAUSED_UPGRADE) {
    fail("protocol upgrade is not supported");
    return false;
  }
  // Our own HPE_USER errors already called fail(); this keeps their message.
  const char* reason = llhttp_get_error_reason(&parser_);
  fail(std::string(llhttp_errno_name(err)) + ": " + (reason ? reason : "?"));
  return false;
}

bool ResponseParser::finish() {
  if (failed_) return false;
  if (complete_) return true;
  if (!started_) {
    fail("connection closed before a response");
    return false;
  }
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (err != HPE_OK && err != HPE_PAUSED) {
    fail(std::string("response cut short (") + llhttp_errno_name(err) + ")");
    return false;
  }
  if (!complete_) {
    fail("response cut short");
    return false;
  }
  return true;
}

int ResponseParser::count_head(std::size_t length) {
  head_bytes_ += length + kSpanOverhead;
  if (head_bytes_ > kMaxHeadBytes) {
    fail("response head larger than " + std::to_string(kMaxHeadBytes) + " bytes");
    return HPE_USER;
  }
  return HPE_OK;
}

int ResponseParser::on_message_begin(llhttp_t* p) {
  auto* s = self(p);
  // Also after a skipped 1xx: start the final response afresh (the head limit spans both).
  s->response_ = Response{};
  s->field_.clear();
  s->field_done_ = false;
  return HPE_OK;
}

int ResponseParser::on_status(llhttp_t* p, const char*, std::size_t length) {
  return self(p)->count_head(length);
}

int ResponseParser::on_header_field(llhttp_t* p, const char* at, std::size_t length) {
  auto* s = self(p);
  if (int rc = s->count_head(length)) return rc;
  if (s->field_done_) {
    s->field_.clear();
    s->field_done_ = false;
  }
  for (std::size_t i = 0; i < length; ++i)
    s->field_.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(at[i]))));
  return HPE_OK;
}

int ResponseParser::on_header_value(llhttp_t* p, const char* at, std::size_t length) {
  auto* s = self(p);
  if (int rc = s->count_head(length)) return rc;
  s->field_done_ = true;
  if (s->field_ == "content-type") s->response_.content_type.append(at, length);
  return HPE_OK;
}

int ResponseParser::on_headers_complete(llhttp_t* p) {
  auto* s = self(p);
  s->response_.status = llhttp_get_status_code(p);
  s->field_done_ = true;
  return HPE_OK;
}

int ResponseParser::on_body(llhttp_t* p, const char* at, std::size_t length) {
  auto* s = self(p);
  if (s->response_.body.size() + length > kMaxBodyBytes) {
    s->fail("response body larger than " + std::to_string(kMaxBodyBytes) + " bytes");
    return HPE_USER;
  }
  s->response_.body.append(at, length);
  return HPE_OK;
}

int ResponseParser::on_message_complete(llhttp_t* p) {
  auto* s = self(p);
  int status = llhttp_get_status_code(p);
  // 1xx answers are interim (RFC 9110 15.2): the final response follows on the same stream.
  // 101 is a protocol switch, which llhttp reports as an upgrade.
  if (status >= 100 && status < 200 && status != 101) return HPE_OK;
  s->response_.keep_alive = llhttp_should_keep_alive(p) != 0;
  s->complete_ = true;
  return HPE_PAUSED;
}

}  // namespace dotgate::http
