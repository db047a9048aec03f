// lib/tls/tls_engine.h — one TLS session as a pure engine: ciphertext in -> plaintext out,
// plaintext in -> ciphertext out. No socket, no loop, no timer.
//
// Who calls it: net::TlsStream (lib/net/tls_stream.h) for every TLS connection, the unit tests
// and the fuzzer (two engines talk to each other in memory), the bench.
// What it owns: one OpenSSL SSL object over a BIO of our own (tls_bio.cc) that reads from the
// bytes handed to receive() and writes into the string handed to the call at hand; nothing is
// buffered between calls except what OpenSSL keeps itself (a partial record; with
// SSL_MODE_RELEASE_BUFFERS its buffers go when empty) and plaintext sent before the handshake is
// done (held, encrypted when it completes). So an idle session holds the SSL object and nothing
// else (measured in test/bench/tls_bench.cc; figures in the README).
// How it ends: close() puts close_notify in the output; the peer's close_notify makes the state
// Closed; any protocol error makes it Failed for good, with error() saying why in OpenSSL's
// words (plus the certificate check's result when that is what failed). An alert OpenSSL sends
// on an error is in the ciphertext output of the call that failed: send it, then close.
// Calls are made on one thread; engines on one thread share that thread's OpenSSL error queue,
// which every call clears first.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "lib/tls/tls_context.h"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace dotgate::tls {

// What was negotiated, for the transaction log and a trace header. Empty before the handshake.
struct TlsFacts {
  std::string version;        // "TLSv1.3"
  std::string cipher;         // "TLS_AES_256_GCM_SHA384" (OpenSSL's name)
  std::string cipher_iana;    // the IANA registry's name ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
                              // for OpenSSL's "ECDHE-RSA-AES128-GCM-SHA256"); RFC 8314's "tls" clause
  int bits = 0;               // the cipher's secret bits used
  int alg_bits = 0;           // the cipher's own bits (the same for every cipher TLS 1.2+ allows)
  std::string peer_subject;   // RFC 2253 ("CN=mx.example.org,O=Example"); "" without a certificate
  std::string peer_issuer;
  // "ok"; "not checked" (no CA configured, or the server side, which asks for no certificate);
  // "no certificate"; or why the check failed ("certificate has expired", "hostname mismatch").
  std::string verify;
  bool verified = false;      // a CA was configured and the peer's certificate passed it

  // Postfix's wording for a Received header: "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384
  // (256/256 bits)". "" before the handshake.
  std::string received_clause() const;
};

class TlsEngine {
 public:
  enum class Role { Client, Server };
  enum class State {
    Handshaking,  // sends are held until Open
    Open,
    Closed,       // close_notify sent or received: nothing more goes either way
    Failed,       // error() says why; nothing more goes either way
  };

  // The role must match the context's kind (a server context for Role::Server).
  TlsEngine(std::shared_ptr<const TlsContext> context, Role role);
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Client: the ClientHello, appended to `ciphertext`. Server: nothing (it waits for one).
  void start(std::string& ciphertext);
  // Bytes from the peer, any split. The handshake goes as far as they take it, then records are
  // decrypted: plaintext is appended to `plaintext`, whatever must go back to the peer
  // (handshake messages, alerts, a KeyUpdate reply) to `ciphertext`. After an error or a close
  // the rest of `in` is ignored.
  void receive(std::string_view in, std::string& plaintext, std::string& ciphertext);
  // Plaintext for the peer: encrypted into `ciphertext` when Open, held while Handshaking (and
  // encrypted into the output of the call that completes the handshake), dropped otherwise.
  void send(std::string_view plaintext, std::string& ciphertext);
  // close_notify into `ciphertext` (when Open); the state becomes Closed. Held plaintext is dropped.
  void close(std::string& ciphertext);

  State state() const { return state_; }
  bool open() const { return state_ == State::Open; }
  bool handshake_done() const { return handshake_done_; }  // stays true after a later close or error
  bool peer_closed() const { return peer_closed_; }         // the peer's close_notify came
  const std::string& error() const { return error_; }
  std::size_t held_bytes() const { return held_.size(); }
  Role role() const { return role_; }
  TlsFacts facts() const;

  // The BIO's view of the call at hand (tls_bio.cc): what it may read, where it writes.
  struct Io {
    std::string_view in;
    std::string* out = nullptr;
  };

 private:
  void handshake();        // one step with io_ set
  void read_records(std::string& plaintext);
  void write_held();
  void fail(int ssl_error);
  void begin(std::string_view in, std::string& out);
  void end_call();

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  Io io_;
  std::string held_;  // sent before the handshake was done
  std::string error_;
  Role role_;
  State state_ = State::Handshaking;
  bool handshake_done_ = false;
  bool peer_closed_ = false;
};

const char* to_string(TlsEngine::State state);

}  // namespace dotgate::tls
