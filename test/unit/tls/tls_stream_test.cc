// test/unit/tls/tls_stream_test.cc — net::TlsStream over a ScriptedStream (the inner, a fake
// TCP connection) with a TlsEngine as the peer: STARTTLS on an already-reading stream, implicit
// TLS, the client role waiting for connect, held writes and queued_bytes, on_drained after the
// held writes, close_after_flush (close_notify, and waiting for the handshake), TLS errors and
// ends as StreamEnd, reading during and after the handshake, drop(), and the order of events.
#include <doctest/doctest.h>

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lib/net/tls_stream.h"
#include "test/support/scripted_stream.h"
#include "test/unit/tls/tls_pair.h"

using dotgate::net::kStreamProtocolError;
using dotgate::net::Stream;
using dotgate::net::StreamEnd;
using dotgate::net::StreamPtr;
using dotgate::net::TlsStream;
using dotgate::test::client_context;
using dotgate::test::ScriptedStream;
using dotgate::test::server_context;
using dotgate::test::test_certificates;
using dotgate::tls::TlsEngine;

namespace {

// The TLS stream's owner: every event, in order.
struct Owner final : Stream::Events {
  std::vector<std::string> log;
  std::string data;
  StreamEnd end_seen;
  std::function<void(Stream&)> on_data_hook;
  void on_connected(Stream&, int status) override { log.push_back("connected " + std::to_string(status)); }
  void on_data(Stream& s, std::string_view d) override {
    log.push_back("data");
    data.append(d);
    if (on_data_hook) on_data_hook(s);
  }
  void on_end(Stream&, const StreamEnd& end) override {
    log.push_back("end " + std::to_string(end.status));
    end_seen = end;
  }
  void on_drained(Stream&) override { log.push_back("drained"); }
  void on_closed(Stream&) override { log.push_back("closed"); }
};

// A TLS stream over a scripted inner stream, and the peer's engine on the other end.
struct Fixture {
  Owner owner;
  std::shared_ptr<ScriptedStream::Probe> probe = std::make_shared<ScriptedStream::Probe>();
  ScriptedStream* inner;
  StreamPtr tls;
  TlsEngine peer;
  std::string peer_got;

  // Role of the TLS stream; the peer takes the other one.
  explicit Fixture(TlsStream::Role role, TlsStream::Start start = TlsStream::Start::Now, bool reading = true)
      : inner(new ScriptedStream(nullptr, probe)),
        peer(role == TlsStream::Role::Server ? client_context(test_certificates().ca_file, "mx.test") : server_context(),
             role == TlsStream::Role::Server ? TlsEngine::Role::Client : TlsEngine::Role::Server) {
    if (reading) inner->start_reading();  // STARTTLS: the session's stream was reading already
    auto ctx = role == TlsStream::Role::Server ? server_context() : client_context(test_certificates().ca_file, "mx.test");
    tls = TlsStream::wrap(StreamPtr(inner), ctx, role, &owner, start);
  }
  // A test that did not see the streams go: drop the TLS stream, complete the inner's close (what
  // the loop would do), so both are freed and the sanitizer's leak check means something.
  ~Fixture() {
    tls.reset();
    if (!probe->freed) inner->finish_close();
  }
  // What the TLS stream wrote goes to the peer; what the peer answers is injected. Until quiet.
  void pump(std::size_t piece = 0) {
    std::string to_inner;
    if (peer.role() == TlsEngine::Role::Client && !started_) {
      peer.start(to_inner);
      started_ = true;
    }
    for (int round = 0; round < 20; ++round) {
      std::string written = inner->take_written();
      if (!written.empty()) dotgate::test::TlsPair::feed(peer, written, 0, peer_got, to_inner);
      if (to_inner.empty()) return;
      std::string_view rest(to_inner);
      std::size_t n = piece ? piece : rest.size();
      while (!rest.empty()) {
        inner->inject(rest.substr(0, std::min(n, rest.size())));
        rest.remove_prefix(std::min(n, rest.size()));
      }
      to_inner.clear();
    }
  }
  void peer_sends(std::string_view plain) {
    std::string out;
    peer.send(plain, out);
    inner->inject(out);
  }
  std::string log() const {
    std::string s;
    for (auto& l : owner.log) s += (s.empty() ? "" : ", ") + l;
    return s;
  }
  bool started_ = false;
};

}  // namespace

TEST_CASE("tls stream: STARTTLS on a reading stream; writes held until the handshake; data both ways") {
  Fixture f(TlsStream::Role::Server);
  CHECK(f.inner->events() != &f.owner);  // the TLS stream owns the inner now
  CHECK(f.inner->take_written().empty());  // a server waits for the ClientHello
  f.tls->write("250-mx.test\r\n");
  f.tls->write("250 STARTTLS\r\n");
  CHECK(f.tls->queued_bytes() == 27);
  CHECK(f.inner->take_written().empty());
  f.pump();
  CHECK(f.log() == "connected 0, drained");
  CHECK(f.peer.open());
  CHECK(f.peer_got == "250-mx.test\r\n250 STARTTLS\r\n");  // after the handshake, in order
  CHECK(f.tls->queued_bytes() == 0);
  auto* t = TlsStream::of(*f.tls);
  REQUIRE(t != nullptr);
  CHECK(t->handshake_done());
  CHECK(t->facts().version == "TLSv1.3");
  CHECK(t->facts().verify == "not checked");
  CHECK(TlsStream::of(*f.inner) == nullptr);
  // Client to owner, every split of the record.
  std::string cipher;
  f.peer.send("EHLO client.example\r\n", cipher);
  f.inner->inject(cipher);  // each record is the next in sequence: none may be skipped
  for (std::size_t cut = 1; cut < cipher.size(); ++cut) {
    std::string again;
    f.peer.send("EHLO client.example\r\n", again);
    f.inner->inject(std::string_view(again).substr(0, cut));
    f.inner->inject(std::string_view(again).substr(cut));
  }
  CHECK(f.owner.data.size() == cipher.size() * 21);
  CHECK(f.owner.data.find_first_not_of("EHLO client.example\r\n") == std::string::npos);
  // Owner to client.
  f.tls->write("250 ok\r\n");
  f.pump();
  CHECK(f.peer_got.substr(27) == "250 ok\r\n");
  f.tls->set_nodelay();
  CHECK(f.tls->peer_name() == "127.0.0.1:2525");
}

TEST_CASE("tls stream: the handshake goes on at any piece size; queued_bytes adds the inner's") {
  for (std::size_t piece : {1, 9, 100}) {
    CAPTURE(piece);
    Fixture f(TlsStream::Role::Server);
    f.tls->write("220 hi\r\n");
    f.inner->set_queued(100);
    CHECK(f.tls->queued_bytes() == 108);
    f.pump(piece);
    CHECK(f.peer_got == "220 hi\r\n");
    CHECK(f.tls->queued_bytes() == 100);
    CHECK(f.log() == "connected 0");  // the inner still holds bytes: no drained yet
    f.inner->drain();
    CHECK(f.log() == "connected 0, drained");
  }
}

TEST_CASE("tls stream: implicit TLS on an accepted stream that is not reading yet; reading follows the owner") {
  Fixture f(TlsStream::Role::Server, TlsStream::Start::Now, /*reading=*/false);
  CHECK(f.inner->reading());  // the handshake needs the peer's bytes
  f.pump();
  CHECK(f.log() == "connected 0");
  CHECK(f.inner->reading());  // reading unless the owner pauses
  f.tls->stop_reading();
  CHECK_FALSE(f.inner->reading());
  f.tls->start_reading();
  CHECK(f.inner->reading());
  f.tls->stop_reading();
  CHECK_FALSE(f.inner->reading());
  f.tls->start_reading();
  f.peer_sends("QUIT\r\n");
  CHECK(f.owner.data == "QUIT\r\n");
}

TEST_CASE("tls stream: stop_reading during the handshake takes effect after it") {
  Fixture f(TlsStream::Role::Server);
  f.tls->start_reading();
  f.tls->stop_reading();
  CHECK(f.inner->reading());
  f.pump();
  CHECK(f.peer.open());
  CHECK_FALSE(f.inner->reading());
}

TEST_CASE("tls stream: close_after_flush sends close_notify, then the inner closes after its flush") {
  Fixture f(TlsStream::Role::Server);
  f.pump();
  f.tls->write("221 bye\r\n");
  f.tls->close_after_flush();
  CHECK(f.tls->closing());
  CHECK(f.probe->flushed_close);
  f.pump();
  CHECK(f.peer_got == "221 bye\r\n");
  CHECK(f.peer.peer_closed());  // the close_notify came after the reply
  Stream* raw = f.tls.release();  // the owner keeps its pointer until on_closed, as a session does
  (void)raw;
  f.inner->finish_close();
  CHECK(f.probe->freed);
  CHECK(f.log() == "connected 0, closed");
}

TEST_CASE("tls stream: close_after_flush before the handshake waits for it when writes are held") {
  Fixture f(TlsStream::Role::Server);
  f.tls->write("554 go away\r\n");
  f.tls->close_after_flush();
  CHECK_FALSE(f.probe->closed);  // the 554 can only go once the handshake is done
  f.pump();
  CHECK(f.peer_got == "554 go away\r\n");
  CHECK(f.peer.peer_closed());
  CHECK(f.probe->flushed_close);
  CHECK(f.log().empty());  // a closing stream's owner hears nothing but on_closed
  f.tls.release();
  f.inner->finish_close();
  CHECK(f.log() == "closed");
}

TEST_CASE("tls stream: close_after_flush before the handshake with nothing held closes at once") {
  Fixture f(TlsStream::Role::Server);
  f.tls->close_after_flush();
  CHECK(f.probe->flushed_close);
  f.tls.release();
  f.inner->finish_close();
  CHECK(f.log() == "closed");
}

TEST_CASE("tls stream: a peer that leaves while held writes wait: the inner closes") {
  Fixture f(TlsStream::Role::Server);
  f.tls->write("220 hi\r\n");
  f.tls->close_after_flush();
  f.inner->end(UV_EOF);
  CHECK(f.probe->closed);
  CHECK_FALSE(f.probe->flushed_close);
  f.tls.release();
  f.inner->finish_close();
  CHECK(f.log() == "closed");
}

TEST_CASE("tls stream: plaintext where a ClientHello belongs (STARTTLS injection) is a TLS error") {
  Fixture f(TlsStream::Role::Server);
  f.inner->inject("RSET\r\nMAIL FROM:<a@b>\r\n");
  CHECK(f.log() == "end -100000");
  CHECK(f.owner.end_seen.status == kStreamProtocolError);
  CHECK(f.owner.end_seen.detail.rfind("tls: error:", 0) == 0);
  CHECK(f.owner.end_seen.detail.find("wrong version number") != std::string::npos);
  CHECK_FALSE(f.owner.end_seen.clean());
  CHECK(f.owner.data.empty());  // nothing of it reached the session
  CHECK_FALSE(f.inner->reading());
  // Further bytes, writes: nothing.
  f.inner->inject("x");
  f.tls->write("250 ok\r\n");
  CHECK(f.inner->take_written().empty());
  CHECK(f.log() == "end -100000");
  f.tls.reset();  // drop(): closes, frees after on_closed, events nowhere
  CHECK(f.probe->closed);
  f.inner->finish_close();
  CHECK(f.probe->freed);
  CHECK(f.log() == "end -100000");
}

TEST_CASE("tls stream: a mangled record after the handshake ends it with the alert sent") {
  Fixture f(TlsStream::Role::Server);
  f.pump();
  std::string cipher;
  f.peer.send("DATA\r\n", cipher);
  cipher.back() = static_cast<char>(cipher.back() ^ 1);
  f.inner->inject(cipher);
  CHECK(f.owner.end_seen.status == kStreamProtocolError);
  CHECK(f.owner.end_seen.detail.find("bad record mac") != std::string::npos);
  std::string plain, back;
  f.peer.receive(f.inner->take_written(), plain, back);
  CHECK(f.peer.state() == TlsEngine::State::Failed);  // the alert reached it
  CHECK(f.peer.error().find("alert bad record mac") != std::string::npos);
}

TEST_CASE("tls stream: how it ends: close_notify is clean; an EOF says when it came") {
  SUBCASE("close_notify, data before it delivered first") {
    Fixture f(TlsStream::Role::Server);
    f.pump();
    std::string out;
    f.peer.send("QUIT\r\n", out);
    f.peer.close(out);
    f.inner->inject(out);
    CHECK(f.log() == "connected 0, data, end -4095");
    CHECK(f.owner.end_seen.clean());
    CHECK(f.owner.end_seen.detail == "close_notify");
    CHECK(f.owner.data == "QUIT\r\n");
  }
  SUBCASE("EOF during the handshake") {
    Fixture f(TlsStream::Role::Server);
    f.inner->end(UV_EOF);
    CHECK(f.log() == "end -4095");
    CHECK(f.owner.end_seen.detail == "during the TLS handshake: connection closed");
  }
  SUBCASE("EOF after the handshake, no close_notify") {
    Fixture f(TlsStream::Role::Server);
    f.pump();
    f.inner->end(UV_EOF);
    CHECK(f.owner.end_seen.clean());
    CHECK(f.owner.end_seen.detail == "connection closed (no close_notify)");
  }
  SUBCASE("a socket error passes through") {
    Fixture f(TlsStream::Role::Server);
    f.pump();
    f.inner->end(UV_ECONNRESET, "connection reset by peer");
    CHECK(f.owner.end_seen.status == UV_ECONNRESET);
  }
}

TEST_CASE("tls stream: the owner closes from inside on_data") {
  Fixture f(TlsStream::Role::Server);
  f.pump();
  f.owner.on_data_hook = [](Stream& s) { s.close(); };
  std::string out;
  f.peer.send("QUIT\r\n", out);
  f.peer.close(out);  // the close_notify in the same read must not reach a closed owner
  f.inner->inject(out);
  CHECK(f.log() == "connected 0, data");
  CHECK(f.probe->closed);
  CHECK_FALSE(f.probe->flushed_close);
  f.tls.release();
  f.inner->finish_close();
  CHECK(f.log() == "connected 0, data, closed");
}

TEST_CASE("tls stream: client role: the handshake waits for connect; a failed connect passes through") {
  SUBCASE("connected") {
    Fixture f(TlsStream::Role::Client, TlsStream::Start::OnConnect, /*reading=*/false);
    CHECK(f.inner->take_written().empty());
    CHECK_FALSE(f.inner->reading());
    f.tls->write("EHLO dotgate\r\n");  // held: a pipelining owner may write at once
    f.inner->connected(0);
    CHECK(f.log().empty());  // connected to TCP is not connected to TLS
    CHECK(f.inner->reading());
    f.pump();
    CHECK(f.log() == "connected 0, drained");
    CHECK(f.peer_got == "EHLO dotgate\r\n");
    auto facts = TlsStream::of(*f.tls)->facts();
    CHECK(facts.verified);
    CHECK(facts.peer_subject == "CN=mx.test,O=dotgate tests");
  }
  SUBCASE("refused") {
    Fixture f(TlsStream::Role::Client, TlsStream::Start::OnConnect, false);
    f.inner->connected(UV_ECONNREFUSED);
    CHECK(f.log() == "connected " + std::to_string(UV_ECONNREFUSED));
  }
  SUBCASE("STARTTLS towards the MTA, on a connected stream") {
    Fixture f(TlsStream::Role::Client);
    std::string hello = f.inner->take_written();  // the ClientHello went out from inside wrap()
    REQUIRE(hello.size() > 5);
    CHECK(hello[0] == 0x16);  // a handshake record
    std::string plain, answer;
    f.peer.receive(hello, plain, answer);
    f.inner->inject(answer);
    f.pump();
    CHECK(f.log() == "connected 0");
    CHECK(f.peer.open());
  }
}
