// lib/http/request_parser.cc — RequestParser: llhttp callbacks turned into Request values.
//
// See request_parser.h for the contract. How the head limit is measured exactly: the
// parser pauses itself (HPE_PAUSED) in on_message_begin and on_headers_complete, and
// llhttp_get_error_pos() then says where in the chunk the head began and ended; feed() resumes
// from there. In between, every span callback (URL, header name, header value) re-checks the
// running total, so one huge chunk is refused as soon as it crosses the limit, before the URL is
// copied. A request that ends the connection pauses in on_message_complete too, so that what
// follows it can be refused.
// No llhttp lenient flag is set: each would let a request be read one way here and another way
// by a proxy in front of us (request smuggling). The llhttp sources are compiled without
// LLHTTP_STRICT_MODE, so the two strict-mode checks that matter here are done by us: header
// names are tokens, and nothing but CR/LF follows the last request. With or without strict mode
// the unit tests give the same results.
#include "lib/http/request_parser.h"

namespace dotgate::http {

namespace {

RequestParser* self(llhttp_t* p) { return static_cast<RequestParser*>(p->data); }

}  // namespace

const llhttp_settings_t& RequestParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &RequestParser::on_message_begin;
    s.on_url = &RequestParser::on_url;
    s.on_header_field = &RequestParser::on_header_field;
    s.on_header_value = &RequestParser::on_header_value;
    s.on_headers_complete = &RequestParser::on_headers_complete;
    s.on_body = &RequestParser::on_body;
    s.on_message_complete = &RequestParser::on_message_complete;
    return s;
  }();
  return s;
}

RequestParser::RequestParser() {
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
}

void RequestParser::fail(std::string message) {
  if (failed_) return;
  failed_ = true;
  error_ = std::move(message);
}

// After a request that ends the connection, only stray CR/LF may follow (llhttp's own check for
// this exists in its strict build only, which Debian's sources are not compiled as).
bool RequestParser::check_after_last(std::string_view rest) {
  if (rest.find_first_not_of("\r\n") == std::string_view::npos) return true;
  fail("data after the last request (Connection: close or HTTP/1.0)");
  return false;
}

bool RequestParser::feed(std::string_view data, std::vector<Request>& out) {
  if (failed_) return false;
  if (after_last_) return check_after_last(data);
  out_ = &out;
  const char* p = data.data();
  const char* const end = p + data.size();
  if (in_head_) head_start_ = p;  // the head continues from an earlier chunk

  for (;;) {
    pause_ = Pause::None;
    llhttp_errno_t err = llhttp_execute(&parser_, p, static_cast<std::size_t>(end - p));
    if (err == HPE_OK) break;
    if (err == HPE_PAUSED) {
      const char* pos = llhttp_get_error_pos(&parser_);
      llhttp_resume(&parser_);
      if (pause_ == Pause::MessageBegin) {
        head_start_ = pos;
      } else if (pause_ == Pause::HeadersComplete) {
        if (head_bytes_before_ + static_cast<std::size_t>(pos - head_start_) > kMaxHeadBytes) {
          fail("request head larger than " + std::to_string(kMaxHeadBytes) + " bytes");
          break;
        }
        in_head_ = false;
      } else if (pause_ == Pause::LastMessageComplete) {
        after_last_ = true;  // not resumed: nothing after it is parsed
        check_after_last(std::string_view(pos, static_cast<std::size_t>(end - pos)));
        break;
      }
      p = pos;
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      // The request before it was delivered with keep_alive = false; what follows is another
      // protocol, which we do not speak.
      fail("protocol upgrade is not supported");
      break;
    }
    // Our own HPE_USER errors already called fail(); this keeps their message.
    fail(std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_));
    break;
  }

  if (!failed_ && in_head_) {
    head_bytes_before_ += static_cast<std::size_t>(end - head_start_);
    head_start_ = nullptr;
    if (head_bytes_before_ > kMaxHeadBytes)
      fail("request head larger than " + std::to_string(kMaxHeadBytes) + " bytes");
  }
  out_ = nullptr;
  return !failed_;
}

int RequestParser::on_message_begin(llhttp_t* p) {
  auto* s = self(p);
  s->current_ = Request{};
  s->in_message_ = true;
  s->in_head_ = true;
  s->head_bytes_before_ = 0;
  s->body_bytes_ = 0;
  s->pause_ = Pause::MessageBegin;
  return HPE_PAUSED;
}

int RequestParser::count_head_span(const char* at, std::size_t length) {
  if (head_bytes_before_ + static_cast<std::size_t>(at + length - head_start_) > kMaxHeadBytes) {
    fail("request head larger than " + std::to_string(kMaxHeadBytes) + " bytes");
    return HPE_USER;
  }
  return HPE_OK;
}

int RequestParser::on_url(llhttp_t* p, const char* at, std::size_t length) {
  auto* s = self(p);
  if (int rc = s->count_head_span(at, length)) return rc;
  s->current_.target.append(at, length);
  return HPE_OK;
}

// Header names and values are not kept: the admin endpoint needs only the keep-alive decision,
// which llhttp makes itself from Connection and the version.
int RequestParser::on_header_field(llhttp_t* p, const char* at, std::size_t length) {
  auto* s = self(p);
  if (int rc = s->count_head_span(at, length)) return rc;
  // RFC 9110 5.1: a field name is a token. llhttp checks this only in its strict build; "Bad
  // Header: x" read as a header by one parser and as junk by another is how smuggling starts.
  static constexpr std::string_view kTokenPunctuation = "!#$%&'*+-.^_`|~";
  for (std::size_t i = 0; i < length; ++i) {
    unsigned char c = static_cast<unsigned char>(at[i]);
    bool token = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c != 0 && kTokenPunctuation.find(static_cast<char>(c)) != std::string_view::npos);
    if (!token) {
      s->fail("invalid character in header name");
      return HPE_USER;
    }
  }
  return HPE_OK;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, std::size_t length) {
  return self(p)->count_head_span(at, length);
}

int RequestParser::on_headers_complete(llhttp_t* p) {
  auto* s = self(p);
  s->current_.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
  s->current_.http_major = llhttp_get_http_major(p);
  s->current_.http_minor = llhttp_get_http_minor(p);
  s->pause_ = Pause::HeadersComplete;
  return HPE_PAUSED;
}

int RequestParser::on_body(llhttp_t* p, const char* /*at*/, std::size_t length) {
  auto* s = self(p);
  s->body_bytes_ += length;
  if (s->body_bytes_ > kMaxBodyBytes) {
    s->fail("request body larger than " + std::to_string(kMaxBodyBytes) + " bytes");
    return HPE_USER;
  }
  return HPE_OK;
}

int RequestParser::on_message_complete(llhttp_t* p) {
  auto* s = self(p);
  bool upgrade = llhttp_get_upgrade(p) != 0;
  bool keep_alive = llhttp_should_keep_alive(p) != 0 && !upgrade;
  s->current_.keep_alive = keep_alive;
  s->in_message_ = false;
  s->out_->push_back(std::move(s->current_));
  s->current_ = Request{};
  // An upgrade makes llhttp return HPE_PAUSED_UPGRADE by itself; any other last request pauses
  // here so that feed() learns where it ended.
  if (keep_alive || upgrade) return HPE_OK;
  s->pause_ = Pause::LastMessageComplete;
  return HPE_PAUSED;
}

}  // namespace dotgate::http
