// lib/tls/tls_context.cc — see tls_context.h. Every setting that costs memory per session or
// opens an attack is here, with why.
#include "lib/tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace dotgate::tls {

std::string take_openssl_errors() {
  std::string text;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text;
}

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::string errors = take_openssl_errors();
  throw TlsError(errors.empty() ? what : what + ": " + errors);
}

// What both kinds share.
SSL_CTX* new_context(const SSL_METHOD* method, config::TlsVersion min_version) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (!ctx) fail("tls: cannot create an OpenSSL context");
  // RFC 8996: nothing below 1.2.
  SSL_CTX_set_min_proto_version(ctx, min_version == config::TlsVersion::Tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  // The read and write buffers (~17 KiB each, more on a busy stream) are freed whenever they are
  // empty: an idle SMTP session, the usual state of thousands of them, holds none.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // No renegotiation: a client can make the server redo the expensive half of a handshake as
  // often as it likes (CVE-2011-1473), and SMTP has no use for it. No compression (CRIME).
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  return ctx;
}

}  // namespace

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::shared_ptr<const TlsContext> TlsContext::server(const config::TlsConfig& config) {
  SSL_CTX* ctx = new_context(TLS_server_method(), config.min_version);
  std::shared_ptr<TlsContext> out(new TlsContext(Kind::Server, ctx));  // frees ctx if we throw
  if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1)
    fail("tls.cert_file: cannot load " + config.cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    fail("tls.key_file: cannot load " + config.key_file);
  if (SSL_CTX_check_private_key(ctx) != 1)
    fail("tls.key_file: " + config.key_file + " is not the key of " + config.cert_file);
  if (!config.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, config.ciphers.c_str()) != 1)
    fail("tls.ciphers: no usable TLS 1.2 cipher in \"" + config.ciphers + "\"");
  if (!config.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, config.ciphersuites.c_str()) != 1)
    fail("tls.ciphersuites: not a valid TLS 1.3 ciphersuite list: \"" + config.ciphersuites + "\"");
  // The configured order is the admin's preference; without this the client's order wins.
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  // DHE suites, if the cipher list names any, get parameters matching the key's strength.
  SSL_CTX_set_dh_auto(ctx, 1);
  // No server-side session cache: it would keep up to 20,480 sessions (a few KiB each) per
  // context, per worker reload. Resumption still works through session tickets, which the client
  // keeps; one ticket per handshake is what an MTA's client cache (Postfix) stores.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  // A client certificate is not asked for: SMTP clients on port 25 do not have one that means
  // anything to us (SSL_VERIFY_NONE is the default; said here so nobody wonders).
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  return out;
}

std::shared_ptr<const TlsContext> TlsContext::client(const config::DownstreamTlsConfig& config) {
  SSL_CTX* ctx = new_context(TLS_client_method(), config::TlsVersion::Tls12);
  std::shared_ptr<TlsContext> out(new TlsContext(Kind::Client, ctx));
  if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1)
      fail("downstream.tls.ca_file: cannot load " + config.ca_file);
    out->verifies_ = true;
    out->fails_unverified_ = config.on_error == config::TlsVerifyFailure::Tempfail;
    out->verify_name_ = config.verify_name;
  }
  // With SSL_VERIFY_NONE OpenSSL still checks the chain (and the name) and keeps the result,
  // which TlsEngine::facts() reports; SSL_VERIFY_PEER makes a failed check fail the handshake.
  SSL_CTX_set_verify(ctx, out->fails_unverified_ ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return out;
}

}  // namespace dotgate::tls
