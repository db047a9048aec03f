// test/unit/tls/tls_pair.h — two TlsEngines talking in memory (a client and a server), for the
// unit tests: pump() carries each side's ciphertext to the other, cut in pieces of a given size,
// until neither has anything more to say.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "lib/tls/tls_context.h"
#include "lib/tls/tls_engine.h"
#include "test/support/test_certificates.h"

namespace dotgate::test {

using tls::TlsContext;
using tls::TlsEngine;

inline std::shared_ptr<const TlsContext> server_context() {
  static auto ctx = TlsContext::server(test_certificates().server_config());
  return ctx;
}

// A client that trusts the test CA (and checks `name` if not empty), or, with ca empty, checks nothing.
inline std::shared_ptr<const TlsContext> client_context(const std::string& ca, const std::string& name = "",
                                                       config::TlsVerifyFailure on_error = config::TlsVerifyFailure::Tempfail) {
  config::DownstreamTlsConfig c;
  c.ca_file = ca;
  c.verify_name = name;
  c.on_error = on_error;
  return TlsContext::client(c);
}

struct TlsPair {
  TlsEngine server;
  TlsEngine client;
  std::string to_server;  // ciphertext in flight
  std::string to_client;
  std::string server_got;  // plaintext received
  std::string client_got;

  TlsPair(std::shared_ptr<const TlsContext> server_ctx, std::shared_ptr<const TlsContext> client_ctx)
      : server(std::move(server_ctx), TlsEngine::Role::Server), client(std::move(client_ctx), TlsEngine::Role::Client) {}
  TlsPair() : TlsPair(server_context(), client_context(test_certificates().ca_file, "mx.test")) {}

  // Feeds `bytes` to `engine` in pieces of `piece` bytes (0: all at once).
  static void feed(TlsEngine& engine, std::string bytes, std::size_t piece, std::string& plain, std::string& out) {
    std::string_view rest(bytes);
    if (piece == 0) piece = rest.size() ? rest.size() : 1;
    while (!rest.empty()) {
      auto n = std::min(piece, rest.size());
      engine.receive(rest.substr(0, n), plain, out);
      rest.remove_prefix(n);
    }
  }
  // Carries bytes both ways until both are quiet (bounded: a handshake takes a few rounds).
  void pump(std::size_t piece = 0) {
    for (int round = 0; round < 20 && (!to_server.empty() || !to_client.empty()); ++round) {
      std::string s = std::move(to_server);
      to_server.clear();
      feed(server, std::move(s), piece, server_got, to_client);
      std::string c = std::move(to_client);
      to_client.clear();
      feed(client, std::move(c), piece, client_got, to_server);
    }
  }
  void handshake(std::size_t piece = 0) {
    client.start(to_server);
    pump(piece);
  }
};

}  // namespace dotgate::test
