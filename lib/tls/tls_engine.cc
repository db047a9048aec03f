// lib/tls/tls_engine.cc — see tls_engine.h. Every OpenSSL call runs between begin() and
// end_call(): the BIO sees the caller's bytes and output string only for that long.
#include "lib/tls/tls_engine.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>

#include "lib/tls/tls_bio.h"

namespace dotgate::tls {

namespace {

std::string name_text(const X509_NAME* name) {
  if (!name) return "";
  BIO* mem = BIO_new(BIO_s_mem());
  if (!mem) return "";
  X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);  // UTF-8 kept as is
  char* data = nullptr;
  long len = BIO_get_mem_data(mem, &data);
  std::string out(data ? data : "", len > 0 ? static_cast<std::size_t>(len) : 0);
  BIO_free(mem);
  return out;
}

}  // namespace

const char* to_string(TlsEngine::State state) {
  switch (state) {
    case TlsEngine::State::Handshaking: return "handshaking";
    case TlsEngine::State::Open: return "open";
    case TlsEngine::State::Closed: return "closed";
    case TlsEngine::State::Failed: return "failed";
  }
  return "?";
}

std::string TlsFacts::received_clause() const {
  if (version.empty()) return "";
  return "using " + version + " with cipher " + cipher + " (" + std::to_string(bits) + "/" +
         std::to_string(alg_bits) + " bits)";
}

TlsEngine::TlsEngine(std::shared_ptr<const TlsContext> context, Role role)
    : context_(std::move(context)), role_(role) {
  bool server = role == Role::Server;
  if (!context_ || (context_->kind() == TlsContext::Kind::Server) != server)
    throw std::logic_error("TlsEngine: the context's kind does not match the role");
  ERR_clear_error();
  ssl_ = SSL_new(context_->native());
  BIO* bio = ssl_ ? new_engine_bio(&io_) : nullptr;
  if (!bio) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    throw std::runtime_error("tls: out of memory: " + take_openssl_errors());
  }
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways; SSL_free frees it
  if (server) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    const std::string& name = context_->verify_name();
    if (!name.empty()) {
      SSL_set_tlsext_host_name(ssl_, name.c_str());  // SNI: an MTA with several names picks this one
      // RFC 6125: the name checked as part of the chain; "*.example.org" matches one label only.
      SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl_, name.c_str());
    }
  }
}

TlsEngine::~TlsEngine() { SSL_free(ssl_); }

void TlsEngine::begin(std::string_view in, std::string& out) {
  ERR_clear_error();  // another engine on this thread may have left errors behind
  io_.in = in;
  io_.out = &out;
}

void TlsEngine::end_call() {
  io_.in = {};
  io_.out = nullptr;
  // SSL_MODE_RELEASE_BUFFERS frees a buffer only on the application-data path; the buffers of the
  // handshake (~34 KiB together) would stay until the first record each way. This frees them
  // whenever they are empty (it declines otherwise): a session idle right after its handshake
  // holds no more than one idle after an exchange.
  if (ssl_) SSL_free_buffers(ssl_);
}

void TlsEngine::start(std::string& ciphertext) {
  if (role_ != Role::Client || state_ != State::Handshaking) return;
  begin({}, ciphertext);
  handshake();
  end_call();
}

void TlsEngine::handshake() {
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    state_ = State::Open;
    handshake_done_ = true;
    write_held();
    return;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) fail(err);
}

void TlsEngine::receive(std::string_view in, std::string& plaintext, std::string& ciphertext) {
  if (state_ == State::Closed || state_ == State::Failed) return;
  begin(in, ciphertext);
  if (state_ == State::Handshaking) handshake();
  if (state_ == State::Open) read_records(plaintext);
  end_call();
}

void TlsEngine::read_records(std::string& plaintext) {
  for (;;) {
    char buf[16 * 1024];  // one record's worth: SSL_read returns at most one record per call
    std::size_t n = 0;
    int rc = SSL_read_ex(ssl_, buf, sizeof buf, &n);
    if (rc == 1) {
      plaintext.append(buf, n);
      continue;
    }
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;  // all input used
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      state_ = State::Closed;
      return;
    }
    fail(err);
    return;
  }
}

void TlsEngine::send(std::string_view plaintext, std::string& ciphertext) {
  if (plaintext.empty()) return;
  if (state_ == State::Handshaking) {
    held_.append(plaintext);
    return;
  }
  if (state_ != State::Open) return;
  begin({}, ciphertext);
  std::size_t written = 0;
  // Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write_ex writes all of it or fails; our BIO never
  // refuses a write, so a failure is an error, never "would block".
  int rc = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &written);
  if (rc != 1) fail(SSL_get_error(ssl_, rc));
  end_call();
}

void TlsEngine::write_held() {
  if (held_.empty()) return;
  std::string held;
  held.swap(held_);  // its memory goes with this call
  std::size_t written = 0;
  int rc = SSL_write_ex(ssl_, held.data(), held.size(), &written);
  if (rc != 1) fail(SSL_get_error(ssl_, rc));
}

void TlsEngine::close(std::string& ciphertext) {
  std::string().swap(held_);
  if (state_ == State::Open) {
    begin({}, ciphertext);
    SSL_shutdown(ssl_);  // close_notify out; we do not wait for the peer's (SMTP has said QUIT)
    end_call();
  }
  if (state_ != State::Failed) state_ = State::Closed;
}

void TlsEngine::fail(int ssl_error) {
  state_ = State::Failed;
  std::string().swap(held_);
  std::string text = take_openssl_errors();
  if (text.empty()) {
    text = ssl_error == SSL_ERROR_SYSCALL ? "unexpected end of the TLS stream"
                                          : "TLS error " + std::to_string(ssl_error);
  }
  long verify = SSL_get_verify_result(ssl_);
  if (role_ == Role::Client && context_->verifies() && verify != X509_V_OK)
    text += " (certificate: " + std::string(X509_verify_cert_error_string(verify)) + ")";
  error_ = std::move(text);
}

TlsFacts TlsEngine::facts() const {
  TlsFacts f;
  if (!handshake_done_) return f;
  f.version = SSL_get_version(ssl_);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_)) {
    f.cipher = SSL_CIPHER_get_name(c);
    f.bits = SSL_CIPHER_get_bits(c, &f.alg_bits);
    if (const char* iana = SSL_CIPHER_standard_name(c)) f.cipher_iana = iana;
  }
  X509* peer = SSL_get0_peer_certificate(ssl_);
  if (peer) {
    f.peer_subject = name_text(X509_get_subject_name(peer));
    f.peer_issuer = name_text(X509_get_issuer_name(peer));
  }
  if (role_ == Role::Server || !context_->verifies()) {
    f.verify = "not checked";
  } else if (!peer) {
    f.verify = "no certificate";
  } else {
    long result = SSL_get_verify_result(ssl_);
    f.verified = result == X509_V_OK;
    f.verify = f.verified ? "ok" : X509_verify_cert_error_string(result);
  }
  return f;
}

}  // namespace dotgate::tls
