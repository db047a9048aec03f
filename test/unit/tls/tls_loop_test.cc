// test/unit/tls/tls_loop_test.cc — TlsStream client <-> TlsStream server on a real libuv loop over
// real TCP on 127.0.0.1: implicit TLS on the accepted stream (the greeting written before the
// handshake), a verifying client that connects first and handshakes at on_connected, 8 MiB from
// the client (more than the socket buffers: the inner's queue and on_drained), the server's
// reply and close_after_flush (close_notify), the client's clean end; both streams free themselves
// and the loop closes with nothing left open. Bounded by a 10 s guard timer.
#include <doctest/doctest.h>

#include <uv.h>

#include <memory>
#include <string>

#include "lib/net/listener.h"
#include "lib/net/tcp_connection.h"
#include "lib/net/tls_stream.h"
#include "test/unit/tls/tls_pair.h"

using namespace dotgate;
using net::Stream;
using net::StreamEnd;
using net::StreamPtr;
using net::TlsStream;

namespace {

constexpr std::size_t kBody = 8 << 20;  // past loopback's socket buffers (up to 4 MiB with autotuning)

struct ServerSide final : Stream::Events {
  StreamPtr stream;
  std::string got;
  bool connected = false;
  bool closed = false;
  tls::TlsFacts facts;
  void on_connected(Stream& s, int status) override {
    connected = status == 0;
    facts = TlsStream::of(s)->facts();
  }
  void on_data(Stream& s, std::string_view d) override {
    got.append(d);
    if (got.size() >= 6 && got.compare(got.size() - 6, 6, "QUIT\r\n") == 0) {
      s.write("221 2.0.0 bye, got " + std::to_string(got.size()) + "\r\n");
      s.close_after_flush();
    }
  }
  void on_end(Stream& s, const StreamEnd&) override { s.close(); }
  void on_closed(Stream&) override {
    closed = true;
    stream.release();  // it frees itself right after this
  }
};

struct ClientSide final : Stream::Events {
  StreamPtr stream;
  std::string got;
  int connect_status = 1;
  int drained = 0;
  std::size_t queued_after_write = 0;
  bool closed = false;
  StreamEnd end;
  tls::TlsFacts facts;
  std::function<void()> on_gone;
  void on_connected(Stream& s, int status) override {
    connect_status = status;
    if (status != 0) return;
    facts = TlsStream::of(s)->facts();
    s.write("EHLO client.test\r\n");
    s.write(std::string(kBody - 24, 'x'));
    s.write("QUIT\r\n");
    queued_after_write = s.queued_bytes();
  }
  void on_data(Stream&, std::string_view d) override { got.append(d); }
  void on_end(Stream& s, const StreamEnd& e) override {
    end = e;
    s.close();
  }
  void on_drained(Stream&) override { ++drained; }
  void on_closed(Stream&) override {
    closed = true;
    stream.release();
    if (on_gone) on_gone();
  }
};

}  // namespace

TEST_CASE("tls stream on a real loop: implicit TLS server, verifying client, 8 MiB, close_notify") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto buffer = std::make_unique<net::ReadBuffer>();
  auto server_ctx = test::server_context();
  auto client_ctx = test::client_context(test::test_certificates().ca_file, "mx.test");
  ServerSide server;
  ClientSide client;

  net::Listener listener(&loop, [&](uv_stream_t* l) {
    auto* c = net::TcpConnection::create(&loop, nullptr, buffer.get());
    REQUIRE(c->accept_from(l) == 0);
    server.stream = TlsStream::wrap(StreamPtr(c), server_ctx, TlsStream::Role::Server, &server);
    server.stream->write("220 mx.test ESMTP\r\n");  // held until the handshake is done
  });
  std::string error;
  REQUIRE(listener.open(config::Endpoint{"127.0.0.1", 0}, error) == 0);

  uv_timer_t guard;
  uv_timer_init(&loop, &guard);
  uv_timer_start(&guard, [](uv_timer_t* t) { uv_stop(t->loop); }, 10'000, 0);

  sockaddr_storage address;
  REQUIRE(net::make_sockaddr("127.0.0.1", listener.port(), &address) == 0);
  auto* tcp = net::TcpConnection::create(&loop, nullptr, buffer.get());
  REQUIRE(tcp->connect(reinterpret_cast<sockaddr*>(&address)) == 0);
  client.stream = TlsStream::wrap(StreamPtr(tcp), client_ctx, TlsStream::Role::Client, &client, TlsStream::Start::OnConnect);
  client.on_gone = [&] {
    listener.close([] {});
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
  };

  uv_run(&loop, UV_RUN_DEFAULT);

  CHECK(client.connect_status == 0);
  CHECK(client.facts.verified);
  CHECK(client.facts.peer_subject == "CN=mx.test,O=dotgate tests");
  CHECK(server.connected);
  CHECK(server.facts.version == "TLSv1.3");
  CHECK(server.got.size() == kBody);
  CHECK(server.got.rfind("EHLO client.test\r\nxxx", 0) == 0);
  CHECK(client.got == "220 mx.test ESMTP\r\n221 2.0.0 bye, got " + std::to_string(kBody) + "\r\n");
  CHECK(client.end.clean());
  CHECK(client.end.detail == "close_notify");  // not a bare EOF: the server said close_notify
  CHECK(client.queued_after_write > 0);  // 8 MiB did not fit the socket at once...
  CHECK(client.drained >= 1);            // ...and the owner heard when the queue emptied
  CHECK(server.closed);
  CHECK(client.closed);
  // Nothing left open: the guard was closed, not fired.
  CHECK(uv_loop_close(&loop) == 0);
}
