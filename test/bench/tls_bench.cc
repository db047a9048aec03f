// test/bench/tls_bench.cc — what TLS costs dotgate on one thread: full handshakes per second, and
// the memory an idle TLS session holds. Run by test/bench/tls.sh (see there for the build).
//
// Engine pairs in memory (lib/tls/tls_engine.h), no sockets: what is measured is OpenSSL's work
// and ours, not the kernel's. For each key type (EC P-256, RSA 2048; certificates made at start):
//   - handshakes: N fresh client+server pairs, each to Open (TLS 1.3, X25519, the default
//     ciphersuite; no resumption). The server's calls are timed on their own: that is what one
//     dotgate worker thread pays per client; the pair rate is shown too.
//   - idle sessions: S server engines handshaken and idle (their clients freed afterwards), as
//     10,000 idle STARTTLS sessions would be. Heap in use (mallinfo2) and VmRSS
//     (/proc/self/status) before and after, per session; plus sizeof(net::TlsStream), which
//     holds the engine.
// Usage: tls_bench [handshakes N] [sessions S]   (defaults 2000, 10000)
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "lib/net/tls_stream.h"
#include "lib/tls/tls_context.h"
#include "lib/tls/tls_engine.h"
#include "test/support/test_certificates.h"

using namespace dotgate;
using Clock = std::chrono::steady_clock;

namespace {

long vm_rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

std::size_t heap_in_use() { return mallinfo2().uordblks; }

struct Timed {
  double server_s = 0;
  double client_s = 0;
};

// One handshake between fresh engines, each side's calls timed.
void handshake(tls::TlsEngine& server, tls::TlsEngine& client, Timed& t) {
  std::string to_server, to_client, plain;
  auto t0 = Clock::now();
  client.start(to_server);
  t.client_s += std::chrono::duration<double>(Clock::now() - t0).count();
  for (int round = 0; round < 10 && !(server.open() && client.open() && to_server.empty() && to_client.empty()); ++round) {
    auto a = Clock::now();
    server.receive(to_server, plain, to_client);
    auto b = Clock::now();
    to_server.clear();
    client.receive(to_client, plain, to_server);
    auto c = Clock::now();
    to_client.clear();
    t.server_s += std::chrono::duration<double>(b - a).count();
    t.client_s += std::chrono::duration<double>(c - b).count();
  }
  if (!server.open() || !client.open()) {
    std::fprintf(stderr, "handshake failed: %s / %s\n", server.error().c_str(), client.error().c_str());
    std::exit(1);
  }
}

void idle_sessions(const std::shared_ptr<const tls::TlsContext>& server_ctx,
                   const std::shared_ptr<const tls::TlsContext>& client_ctx, int sessions, bool exchange) {
  const char* when = exchange ? "after an exchange" : "right after the handshake";
  malloc_trim(0);
  std::size_t heap0 = heap_in_use();
  long rss0 = vm_rss_kib();
  std::vector<std::unique_ptr<tls::TlsEngine>> servers;
  servers.reserve(static_cast<std::size_t>(sessions));
  {
    std::vector<std::unique_ptr<tls::TlsEngine>> clients;
    clients.reserve(static_cast<std::size_t>(sessions));
    for (int i = 0; i < sessions; ++i) {
      servers.push_back(std::make_unique<tls::TlsEngine>(server_ctx, tls::TlsEngine::Role::Server));
      clients.push_back(std::make_unique<tls::TlsEngine>(client_ctx, tls::TlsEngine::Role::Client));
      Timed ignore;
      handshake(*servers.back(), *clients.back(), ignore);
      if (!exchange) continue;
      // One exchange each way, as an idle SMTP session after EHLO has had.
      std::string cipher, plain, back;
      clients.back()->send("EHLO client.example\r\n", cipher);
      servers.back()->receive(cipher, plain, back);
      cipher.clear();
      servers.back()->send("250-mx.test\r\n250 PIPELINING\r\n", cipher);
      clients.back()->receive(cipher, plain, back);
    }
    std::size_t heap_pairs = heap_in_use();
    long rss_pairs = vm_rss_kib();
    std::printf("  %d idle pairs %s (both ends): heap %.1f KiB per pair, RSS %.1f KiB per pair\n", sessions, when,
                (heap_pairs - heap0) / 1024.0 / sessions, static_cast<double>(rss_pairs - rss0) / sessions);
  }
  malloc_trim(0);
  std::size_t heap1 = heap_in_use();
  long rss1 = vm_rss_kib();
  std::printf("  %d idle server sessions %s: heap %.2f KiB per session, RSS %.2f KiB per session "
              "(+ sizeof(TlsStream) = %zu bytes)\n",
              sessions, when, (heap1 - heap0) / 1024.0 / sessions, static_cast<double>(rss1 - rss0) / sessions,
              sizeof(net::TlsStream));
  servers.clear();
}

void run(const char* label, test::KeyType type, int handshakes, int sessions) {
  test::CertificateSet certs = test::make_certificate_set(type);
  auto server_ctx = tls::TlsContext::server(certs.server_config());
  config::DownstreamTlsConfig client_config;
  client_config.ca_file = certs.ca_file;
  client_config.verify_name = "mx.test";
  auto client_ctx = tls::TlsContext::client(client_config);

  // Warm up (first-use initialisation inside OpenSSL).
  for (int i = 0; i < 20; ++i) {
    tls::TlsEngine s(server_ctx, tls::TlsEngine::Role::Server), c(client_ctx, tls::TlsEngine::Role::Client);
    Timed ignored;
    handshake(s, c, ignored);
  }

  Timed t;
  auto start = Clock::now();
  for (int i = 0; i < handshakes; ++i) {
    tls::TlsEngine s(server_ctx, tls::TlsEngine::Role::Server), c(client_ctx, tls::TlsEngine::Role::Client);
    handshake(s, c, t);
  }
  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  tls::TlsEngine probe_s(server_ctx, tls::TlsEngine::Role::Server), probe_c(client_ctx, tls::TlsEngine::Role::Client);
  Timed ignored;
  handshake(probe_s, probe_c, ignored);
  auto facts = probe_s.facts();
  std::printf("%s: %s %s\n", label, facts.version.c_str(), facts.cipher.c_str());
  std::printf("  handshakes: %d; server side %.0f/s (%.3f ms each), client side %.3f ms each, pairs %.0f/s\n",
              handshakes, handshakes / t.server_s, 1000 * t.server_s / handshakes, 1000 * t.client_s / handshakes,
              handshakes / wall);

  idle_sessions(server_ctx, client_ctx, sessions, false);
  idle_sessions(server_ctx, client_ctx, sessions, true);
  std::error_code ec;
  std::filesystem::remove_all(certs.dir, ec);
}

}  // namespace

int main(int argc, char** argv) {
  int handshakes = argc > 1 ? std::atoi(argv[1]) : 2000;
  int sessions = argc > 2 ? std::atoi(argv[2]) : 10000;
  std::printf("tls_bench: %s, one thread\n", OpenSSL_version(OPENSSL_VERSION));
  run("EC P-256 certificate", test::KeyType::EcP256, handshakes, sessions);
  run("RSA 2048 certificate", test::KeyType::Rsa2048, handshakes / 4, sessions);
  return 0;
}
