// test/fuzz/tls_record_fuzz.cc — libFuzzer target for the TLS record path: TlsEngine and the BIO
// under it (lib/tls), fed bytes no peer should send.
//
// Input: byte 0 picks the mode, byte 1 the piece size the rest is fed in (1..256; 0: at once):
//   0  the bytes as a client's first flight to a fresh server engine (implicit TLS, STARTTLS);
//   1  mid-handshake: a real ClientHello went in, the server answered; the bytes stand in for
//      the client's second flight;
//   2  after a real handshake: the bytes as records to the server;
//   3  a client engine's view: a real ClientHello went out; the bytes stand in for the server's
//      answer (ServerHello, certificate parsing);
//   4  the bytes as plaintext through a real pair, client to server: must arrive unchanged.
// Checks beyond "no crash, no leak, no UB": a Failed engine says why, delivers no plaintext and
// sends nothing more; garbage never yields plaintext in modes 0, 1 and 3.
// Certificates are made once at start (test/support/test_certificates.h), removed at exit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "lib/tls/tls_context.h"
#include "lib/tls/tls_engine.h"
#include "test/support/test_certificates.h"

using dotgate::tls::TlsContext;
using dotgate::tls::TlsEngine;

namespace {

std::shared_ptr<const TlsContext> g_server;
std::shared_ptr<const TlsContext> g_client;

void require(bool ok) {
  if (!ok) std::abort();
}

void feed(TlsEngine& e, std::string_view bytes, std::size_t piece, std::string& plain, std::string& out) {
  if (piece == 0) piece = bytes.size() ? bytes.size() : 1;
  while (!bytes.empty()) {
    auto n = piece < bytes.size() ? piece : bytes.size();
    e.receive(bytes.substr(0, n), plain, out);
    bytes.remove_prefix(n);
  }
}

void handshake(TlsEngine& server, TlsEngine& client) {
  std::string to_server, to_client, plain;
  client.start(to_server);
  for (int i = 0; i < 6 && (!to_server.empty() || !to_client.empty()); ++i) {
    server.receive(to_server, plain, to_client);
    to_server.clear();
    client.receive(to_client, plain, to_server);
    to_client.clear();
  }
  require(server.open() && client.open());
}

void check_after(TlsEngine& e, const std::string& plain, bool garbage) {
  if (e.state() == TlsEngine::State::Failed) {
    require(!e.error().empty());
    std::string more;
    e.send("MAIL FROM:<a@b>\r\n", more);
    require(more.empty());
    e.receive("\x17\x03\x03\x00\x01x", const_cast<std::string&>(plain), more);
    require(more.empty());
  }
  if (garbage) require(plain.empty());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const auto& certs = dotgate::test::test_certificates();
  g_server = TlsContext::server(certs.server_config());
  dotgate::config::DownstreamTlsConfig c;
  c.ca_file = certs.ca_file;
  c.verify_name = "mx.test";
  g_client = TlsContext::client(c);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  int mode = data[0] % 5;
  std::size_t piece = data[1];
  std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  std::string plain, out;
  switch (mode) {
    case 0: {
      TlsEngine server(g_server, TlsEngine::Role::Server);
      feed(server, bytes, piece, plain, out);
      check_after(server, plain, true);
      break;
    }
    case 1: {
      TlsEngine server(g_server, TlsEngine::Role::Server), client(g_client, TlsEngine::Role::Client);
      std::string hello, answer;
      client.start(hello);
      server.receive(hello, plain, answer);
      require(server.state() == TlsEngine::State::Handshaking);
      feed(server, bytes, piece, plain, out);
      check_after(server, plain, true);
      break;
    }
    case 2: {
      TlsEngine server(g_server, TlsEngine::Role::Server), client(g_client, TlsEngine::Role::Client);
      handshake(server, client);
      feed(server, bytes, piece, plain, out);
      check_after(server, plain, false);
      break;
    }
    case 3: {
      TlsEngine client(g_client, TlsEngine::Role::Client);
      std::string hello;
      client.start(hello);
      feed(client, bytes, piece, plain, out);
      check_after(client, plain, true);
      require(!client.handshake_done());  // no forged flight gets past a verifying client
      break;
    }
    case 4: {
      TlsEngine server(g_server, TlsEngine::Role::Server), client(g_client, TlsEngine::Role::Client);
      handshake(server, client);
      std::string cipher;
      client.send(bytes, cipher);
      feed(server, cipher, piece, plain, out);
      require(plain == bytes);
      require(server.open());
      break;
    }
  }
  return 0;
}
