// test/unit/tls/engine_test.cc — TlsEngine pairs in memory: the handshake at every piece size,
// data both ways at every split point, writes held until the handshake is done, close_notify,
// certificate checks (unknown CA, self-signed, wrong name, on_error accept, no CA at all),
// garbage before and after the handshake, the facts, and the cipher policy.
#include <doctest/doctest.h>

#include <openssl/ssl.h>

#include <string>

#include "test/unit/tls/tls_pair.h"

using dotgate::test::client_context;
using dotgate::test::server_context;
using dotgate::test::test_certificates;
using dotgate::test::TlsPair;
using dotgate::tls::TlsContext;
using dotgate::tls::TlsEngine;
using State = TlsEngine::State;

namespace {

// SMTP-looking bytes of `n` octets, each line distinct so a lost or moved byte shows.
std::string smtp_bytes(std::size_t n) {
  std::string s;
  for (int i = 0; s.size() < n; ++i) s += "RCPT TO:<user" + std::to_string(i) + "@example.org>\r\n";
  s.resize(n);
  return s;
}

}  // namespace

TEST_CASE("tls engine: a verified handshake, and what each side learns of it") {
  TlsPair p;
  CHECK(p.client.state() == State::Handshaking);
  CHECK(p.client.facts().version.empty());
  p.handshake();
  REQUIRE(p.client.state() == State::Open);
  REQUIRE(p.server.state() == State::Open);
  auto c = p.client.facts();
  CHECK(c.version == "TLSv1.3");
  CHECK(!c.cipher.empty());
  CHECK(c.bits >= 128);
  CHECK(c.peer_subject == "CN=mx.test,O=dotgate tests");
  CHECK(c.peer_issuer == "CN=dotgate test CA,O=dotgate tests");
  CHECK(c.verify == "ok");
  CHECK(c.verified);
  auto s = p.server.facts();
  CHECK(s.version == "TLSv1.3");
  CHECK(s.cipher == c.cipher);
  CHECK(s.peer_subject.empty());  // no client certificate is asked for
  CHECK(s.verify == "not checked");
  CHECK_FALSE(s.verified);
  CHECK(s.received_clause() == "using TLSv1.3 with cipher " + s.cipher + " (" + std::to_string(s.bits) + "/" +
                                   std::to_string(s.alg_bits) + " bits)");
  CHECK(s.alg_bits == s.bits);
  CHECK(s.cipher_iana == s.cipher);  // TLS 1.3: OpenSSL uses the IANA names
  CHECK(p.client_got.empty());
  CHECK(p.server_got.empty());
}

TEST_CASE("tls engine: the handshake completes whatever the piece size") {
  for (std::size_t piece : {1, 2, 3, 5, 7, 13, 64, 100, 511, 1000, 4096}) {
    CAPTURE(piece);
    TlsPair p;
    p.handshake(piece);
    CHECK(p.client.state() == State::Open);
    CHECK(p.server.state() == State::Open);
  }
}

TEST_CASE("tls engine: the server's first flight cut in two at every byte") {
  // The flight that carries the certificate is the longest; each cut leaves the client a
  // partial record (or a partial header) to keep until the rest comes.
  TlsPair probe;
  probe.client.start(probe.to_server);
  std::string plain;
  std::string flight;
  probe.server.receive(probe.to_server, plain, flight);
  REQUIRE(flight.size() > 500);
  for (std::size_t cut = 1; cut < flight.size(); cut += (cut < 40 ? 1 : 7)) {
    CAPTURE(cut);
    TlsPair p;
    p.client.start(p.to_server);
    std::string s_out;
    p.server.receive(p.to_server, p.server_got, s_out);
    p.to_server.clear();
    // An ECDSA signature's DER length varies by a byte or two from one handshake to the next, so
    // this pair's flight may end before the probe's did: a cut past its end is no cut.
    if (cut >= s_out.size()) continue;
    p.client.receive(std::string_view(s_out).substr(0, cut), p.client_got, p.to_server);
    CHECK(p.client.state() == State::Handshaking);
    p.client.receive(std::string_view(s_out).substr(cut), p.client_got, p.to_server);
    CHECK(p.client.state() == State::Open);
    p.pump();
    CHECK(p.server.state() == State::Open);
  }
}

TEST_CASE("tls engine: data both ways at every split point of the ciphertext") {
  TlsPair p;
  p.handshake();
  REQUIRE(p.server.open());
  const std::string message = smtp_bytes(700);
  for (bool to_server : {true, false}) {
    TlsEngine& from = to_server ? p.client : p.server;
    TlsEngine& to = to_server ? p.server : p.client;
    for (std::size_t cut = 0; cut <= 760; ++cut) {
      std::string cipher;
      from.send(message, cipher);
      REQUIRE(cipher.size() > message.size());
      if (cut > cipher.size()) break;
      std::string plain, back;
      to.receive(std::string_view(cipher).substr(0, cut), plain, back);
      to.receive(std::string_view(cipher).substr(cut), plain, back);
      CAPTURE(cut);
      REQUIRE(plain == message);
      CHECK(back.empty());
    }
  }
  CHECK(p.server.open());
  CHECK(p.client.open());
}

TEST_CASE("tls engine: a large write spans records and arrives whole at any piece size") {
  TlsPair p;
  p.handshake();
  const std::string message = smtp_bytes(100'000);  // > 6 records of 16 KiB
  for (std::size_t piece : {1, 17, 1000, 16389, 65536}) {
    CAPTURE(piece);
    std::string cipher;
    p.client.send(message, cipher);
    std::string plain, back;
    TlsPair::feed(p.server, cipher, piece, plain, back);
    CHECK(plain == message);
  }
}

TEST_CASE("tls engine: writes before the handshake are held, then sent, in order") {
  TlsPair p;
  std::string out;
  p.server.send("220 mx.test ESMTP\r\n", out);
  p.client.send("EHLO a\r\n", out);
  p.server.send("250 ok\r\n", out);
  CHECK(out.empty());  // nothing leaves before the keys exist
  CHECK(p.server.held_bytes() == 27);
  CHECK(p.client.held_bytes() == 8);
  p.handshake();
  CHECK(p.server.held_bytes() == 0);
  CHECK(p.client.held_bytes() == 0);
  CHECK(p.client_got == "220 mx.test ESMTP\r\n250 ok\r\n");
  CHECK(p.server_got == "EHLO a\r\n");
}

TEST_CASE("tls engine: close_notify ends the peer's side cleanly, data before it delivered") {
  TlsPair p;
  p.handshake();
  std::string cipher;
  p.client.send("QUIT\r\n", cipher);
  p.client.close(cipher);
  CHECK(p.client.state() == State::Closed);
  std::string plain, back;
  p.server.receive(cipher, plain, back);
  CHECK(plain == "QUIT\r\n");
  CHECK(p.server.state() == State::Closed);
  CHECK(p.server.peer_closed());
  CHECK(p.server.error().empty());
  // Nothing more goes either way.
  std::string after;
  p.server.send("221 bye\r\n", after);
  CHECK(after.empty());
  p.client.send("NOOP\r\n", after);
  CHECK(after.empty());
}

TEST_CASE("tls engine: a client that verifies refuses a certificate its CA did not sign") {
  SUBCASE("a CA that signed nothing here") {
    TlsPair p(server_context(), client_context(test_certificates().other_ca_file));
    p.handshake();
    CHECK(p.client.state() == State::Failed);
    CHECK(p.client.error().find("certificate verify failed") != std::string::npos);
    // The server's file holds its chain up to its (unknown) root, hence this wording.
    CHECK(p.client.error().find("(certificate: self-signed certificate in certificate chain)") != std::string::npos);
    // The client's alert reached the server, which fails too and says so.
    CHECK(p.server.state() == State::Failed);
    CHECK(p.server.error().find("alert") != std::string::npos);
    CHECK_FALSE(p.client.handshake_done());
  }
  SUBCASE("a self-signed certificate") {
    TlsPair p(TlsContext::server(test_certificates().rogue_server_config()),
              client_context(test_certificates().ca_file, "mx.test"));
    p.handshake();
    CHECK(p.client.state() == State::Failed);
    CHECK(p.client.error().find("self-signed certificate") != std::string::npos);
  }
  SUBCASE("the right CA, the wrong name") {
    TlsPair p(server_context(), client_context(test_certificates().ca_file, "other.test"));
    p.handshake();
    CHECK(p.client.state() == State::Failed);
    CHECK(p.client.error().find("hostname mismatch") != std::string::npos);
  }
}

TEST_CASE("tls engine: on_error accept goes on unverified and says why; no CA checks nothing") {
  SUBCASE("accept") {
    TlsPair p(server_context(), client_context(test_certificates().other_ca_file, "", dotgate::config::TlsVerifyFailure::Accept));
    p.handshake();
    REQUIRE(p.client.state() == State::Open);
    auto f = p.client.facts();
    CHECK_FALSE(f.verified);
    CHECK(f.verify == "self-signed certificate in certificate chain");
    CHECK(f.peer_subject == "CN=mx.test,O=dotgate tests");
  }
  SUBCASE("no CA: opportunistic") {
    TlsPair p(TlsContext::server(test_certificates().rogue_server_config()), client_context(""));
    p.handshake();
    REQUIRE(p.client.state() == State::Open);
    CHECK(p.client.facts().verify == "not checked");
    CHECK_FALSE(p.client.facts().verified);
  }
}

TEST_CASE("tls engine: garbage is an error, before and after the handshake") {
  SUBCASE("plain SMTP on an implicit TLS port") {
    TlsEngine server(server_context(), TlsEngine::Role::Server);
    std::string plain, out;
    server.receive("EHLO client.example\r\n", plain, out);
    CHECK(server.state() == State::Failed);
    CHECK_FALSE(server.error().empty());
    CHECK(plain.empty());
    // An error sticks: more input changes nothing.
    server.receive("MAIL FROM:<a@b>\r\n", plain, out);
    CHECK(server.state() == State::Failed);
  }
  SUBCASE("a record of random bytes after the handshake") {
    TlsPair p;
    p.handshake();
    std::string cipher;
    p.client.send("RSET\r\n", cipher);
    for (std::size_t i = 5; i < cipher.size(); ++i) cipher[i] = static_cast<char>(cipher[i] ^ 0x5a);  // body mangled
    std::string plain, back;
    p.server.receive(cipher, plain, back);
    CHECK(p.server.state() == State::Failed);
    CHECK(p.server.error().find("bad record mac") != std::string::npos);
    CHECK(plain.empty());
    CHECK_FALSE(back.empty());  // the alert for the peer
    CHECK(p.server.handshake_done());
  }
}

TEST_CASE("tls engine: cipher policy and minimum version") {
  auto certs = test_certificates();
  SUBCASE("a TLS 1.2 cipher list is what a 1.2 client gets") {
    auto config = certs.server_config();
    config.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
    auto client = client_context(certs.ca_file);
    SSL_CTX_set_max_proto_version(client->native(), TLS1_2_VERSION);  // a client without 1.3
    TlsPair p(TlsContext::server(config), client);
    p.handshake();
    REQUIRE(p.server.open());
    CHECK(p.server.facts().version == "TLSv1.2");
    CHECK(p.server.facts().cipher == "ECDHE-ECDSA-AES128-GCM-SHA256");
  }
  SUBCASE("TLS 1.3 ciphersuites") {
    auto config = certs.server_config();
    config.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
    TlsPair p(TlsContext::server(config), client_context(certs.ca_file));
    p.handshake();
    REQUIRE(p.server.open());
    CHECK(p.server.facts().cipher == "TLS_CHACHA20_POLY1305_SHA256");
    CHECK(p.client.facts().bits == 256);
  }
  SUBCASE("min_version 1.3 refuses a 1.2 client") {
    auto config = certs.server_config();
    config.min_version = dotgate::config::TlsVersion::Tls13;
    auto client = client_context(certs.ca_file);
    SSL_CTX_set_max_proto_version(client->native(), TLS1_2_VERSION);
    TlsPair p(TlsContext::server(config), client);
    p.handshake();
    CHECK(p.server.state() == State::Failed);
    CHECK(p.server.error().find("unsupported protocol") != std::string::npos);
    CHECK(p.client.state() == State::Failed);
  }
}

TEST_CASE("tls context: each refusal names the config key") {
  auto certs = test_certificates();
  auto error_of = [](auto build) -> std::string {
    try {
      build();
    } catch (const dotgate::tls::TlsError& e) {
      return e.what();
    }
    return "(no error)";
  };
  auto with = [&](auto change) {
    auto c = certs.server_config();
    change(c);
    return [c] { TlsContext::server(c); };
  };
  CHECK(error_of(with([&](auto& c) { c.cert_file = certs.dir + "/missing.pem"; })).rfind("tls.cert_file: cannot load " + certs.dir + "/missing.pem: error:", 0) == 0);
  CHECK(error_of(with([&](auto& c) { c.key_file = certs.dir + "/missing.pem"; })).rfind("tls.key_file: cannot load", 0) == 0);
  CHECK(error_of(with([&](auto& c) { c.key_file = certs.rogue_key_file; })) ==
        "tls.key_file: cannot load " + certs.rogue_key_file + ": error:05800074:x509 certificate routines::key values mismatch");
  CHECK(error_of(with([&](auto& c) { c.key_file = certs.cert_file; })).rfind("tls.key_file: cannot load", 0) == 0);
  CHECK(error_of(with([](auto& c) { c.ciphers = "NO-SUCH-CIPHER"; })).rfind("tls.ciphers: no usable TLS 1.2 cipher in \"NO-SUCH-CIPHER\"", 0) == 0);
  CHECK(error_of(with([](auto& c) { c.ciphersuites = "TLS_NO_SUCH"; })).rfind("tls.ciphersuites: not a valid TLS 1.3 ciphersuite list", 0) == 0);
  CHECK(error_of([&] { client_context(certs.dir + "/missing.pem"); }).rfind("downstream.tls.ca_file: cannot load", 0) == 0);
  CHECK(error_of(with([](auto&) {})) == "(no error)");
  // A TlsError is a ConfigError: the catch that refuses a bad config (start, SIGHUP,
  // --check-config) refuses a bad certificate too.
  CHECK_THROWS_AS(with([](auto& c) { c.ciphers = "NONE"; })(), dotgate::config::ConfigError);
  // A role that does not match the context's kind is a programming error.
  CHECK_THROWS_AS(TlsEngine(server_context(), TlsEngine::Role::Client), std::logic_error);
}
