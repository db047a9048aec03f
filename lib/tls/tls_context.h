// lib/tls/tls_context.h — one OpenSSL SSL_CTX, built once from the config and shared, read-only,
// by every TLS session that starts with it.
//
// Two kinds:
//   - server(): dotgate's own certificate chain and key (config `tls`), for its listeners
//     (STARTTLS and implicit TLS). TLS 1.2 minimum (1.3 if configured), the configured cipher
//     list (1.2) and ciphersuites (1.3), no client certificates asked for.
//   - client(): towards the MTA (config `downstream.tls`): verification against ca_file and, if
//     set, verify_name (also sent as SNI); without ca_file nothing is verified (opportunistic).
// Who calls it: proxy/ at start and on every SIGHUP (a fresh context from the files: a renewed
// certificate takes effect for new sessions, a running session keeps the context it started
// with through its std::shared_ptr); the unit tests and the bench.
// Errors: TlsError, a config::ConfigError whose message starts with the config key it concerns
// ("tls.cert_file: cannot load /etc/x.pem: error:..."): built where the Config is (start, SIGHUP,
// --check-config), it is refused by the same catch, and a reload that fails keeps the old one.
// Thread safety: an SSL_CTX is safe to share across worker threads once built; nothing here
// changes it afterwards.
#pragma once

#include <memory>
#include <string>

#include "lib/config/config.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace dotgate::tls {

class TlsError : public config::ConfigError {
 public:
  using config::ConfigError::ConfigError;
};

class TlsContext {
 public:
  enum class Kind { Server, Client };

  static std::shared_ptr<const TlsContext> server(const config::TlsConfig& config);
  static std::shared_ptr<const TlsContext> client(const config::DownstreamTlsConfig& config);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  Kind kind() const { return kind_; }
  SSL_CTX* native() const { return ctx_; }
  // Client side: whether the MTA's certificate is checked at all (ca_file set), whether a failed
  // check fails the handshake (on_error tempfail) or is only reported (accept), and the name.
  bool verifies() const { return verifies_; }
  bool fails_unverified() const { return fails_unverified_; }
  const std::string& verify_name() const { return verify_name_; }

 private:
  TlsContext(Kind kind, SSL_CTX* ctx) : kind_(kind), ctx_(ctx) {}

  Kind kind_;
  SSL_CTX* ctx_;
  bool verifies_ = false;
  bool fails_unverified_ = false;
  std::string verify_name_;
};

// The OpenSSL error queue of this thread as text ("error:0A000086:SSL routines::certificate
// verify failed; ..."), emptied. "" when it was empty.
std::string take_openssl_errors();

}  // namespace dotgate::tls
