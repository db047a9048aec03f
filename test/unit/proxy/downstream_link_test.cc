// Unit tests for proxy/downstream_link with scripted streams (test/support/scripted_stream.h):
// every handshake path a session's downstream connection takes — fresh for the client's greeting,
// a reconnection with the hello replayed, a pooled connection (greeted by a real DownstreamPool
// over scripted streams, with and without the EHLO said ahead), a refused greeting, a refused
// EHLO, the MTA gone mid-handshake, a pooled connection found dead and replaced — and what the
// owner hears on each. A real loop gives the timers and uv_now(); it only runs to close handles
// and, in the timeout test, to let a timer fire.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "proxy/downstream_link.h"
#include "proxy/downstream_pool.h"
#include "test/support/scripted_stream.h"

using namespace dotgate;
using dotgate::test::ScriptedStream;

namespace {
// A plan without XCLIENT (designated initializers would leave members out).
smtp::Handshake::Plan plan(bool relay_greeting, std::string hello) {
  smtp::Handshake::Plan p;
  p.relay_greeting = relay_greeting;
  p.hello = std::move(hello);
  return p;
}

// Every stream made is kept with its probe, so the test can drive it and finish its close.
struct ScriptedConnector final : net::Connector {
  struct Made {
    ScriptedStream* stream;
    std::shared_ptr<ScriptedStream::Probe> probe;
  };
  std::vector<Made> made;
  int fail_with = 0;  // non-zero: the connect cannot even start

  net::Stream* connect(const sockaddr*, net::Stream::Events* events, int& error) override {
    error = fail_with;
    if (fail_with != 0) return nullptr;
    auto probe = std::make_shared<ScriptedStream::Probe>();
    auto* s = new ScriptedStream(events, probe);
    made.push_back({s, probe});
    return s;
  }
  ScriptedStream& last() { return *made.back().stream; }
  // What the loop does for real streams: a closed one reports on_closed and frees itself.
  void finish_closes() {
    for (auto& m : made)
      if (m.probe->closed && !m.probe->freed) m.stream->finish_close();
  }
};

struct Recorder final : proxy::DownstreamLink::Owner {
  std::vector<std::string> events;
  std::vector<smtp::Reply> replies;
  std::function<void()> on_greeting;  // what the session would do there (close, reset)

  void on_link_greeting(smtp::Reply greeting) override {
    events.push_back("greeting " + std::to_string(greeting.code));
    if (on_greeting) on_greeting();
  }
  void on_link_ready() override { events.push_back("ready"); }
  void on_link_reply(smtp::Reply reply) override {
    events.push_back("reply " + std::to_string(reply.code));
    replies.push_back(std::move(reply));
  }
  void on_link_failed(metrics::DownstreamError why, const proxy::ReplySpec& spec, const std::string& detail) override {
    events.push_back("failed " + std::to_string(static_cast<int>(why)) + " " + std::to_string(spec.code) + " " + detail);
  }
  void on_link_closed(const net::StreamEnd& end, bool idle) override {
    events.push_back(std::string("closed ") + (idle ? "idle " : "busy ") + end.detail);
  }
  void on_link_drained() override { events.push_back("drained"); }
};

std::shared_ptr<const proxy::Runtime> make_runtime(std::size_t pool_size = 0, std::string pool_ehlo = "",
                                                   std::size_t max_sessions = 1) {
  config::Config c;
  c.downstream.pool_size = pool_size;
  c.downstream.pool_ehlo = std::move(pool_ehlo);
  c.downstream.pool_max_sessions = max_sessions;
  c.downstream.connect_timeout = std::chrono::milliseconds(50);
  c.downstream.reply_timeout = std::chrono::milliseconds(50);
  return proxy::Runtime::build(std::move(c));
}

struct Fixture {
  uv_loop_t loop{};
  metrics::Metrics metrics;
  metrics::WorkerCounters& counters = metrics.add_worker();
  std::atomic<bool> reachable{true};
  ScriptedConnector connector;
  Recorder owner;
  std::shared_ptr<const proxy::Runtime> runtime;
  std::unique_ptr<proxy::DownstreamPool> pool;
  std::unique_ptr<proxy::DownstreamLink> link;

  explicit Fixture(std::shared_ptr<const proxy::Runtime> rt = make_runtime()) : runtime(std::move(rt)) {
    uv_loop_init(&loop);
    if (runtime->config.downstream.pool_size > 0) {
      pool = std::make_unique<proxy::DownstreamPool>(&loop, connector, &counters, [] {});
      pool->fill(runtime);
    }
    link = std::make_unique<proxy::DownstreamLink>(
        owner, proxy::DownstreamLink::Context{&loop, connector, pool.get(), counters, reachable, "test"}, runtime);
  }
  ~Fixture() {
    link->shut_down();
    uv_close(link->timer_handle(), nullptr);
    if (pool) pool->shut_down();
    connector.finish_closes();
    uv_run(&loop, UV_RUN_DEFAULT);
    link.reset();
    pool.reset();
    CHECK(uv_loop_close(&loop) == 0);  // nothing left open
  }
  // A fresh connection for the client's greeting, connected, greeted, ready; the events so far forgotten.
  ScriptedStream& open_ready() {
    link->open(plan(true, ""));
    ScriptedStream& s = connector.last();
    s.connected(0);
    s.inject("220 mx.example ESMTP\r\n");
    REQUIRE(owner.events == std::vector<std::string>{"greeting 220", "ready"});
    owner.events.clear();
    return s;
  }
  // A pooled connection greeted (and, with pool.ehlo, its EHLO answered) by the pool.
  ScriptedStream& greet_pooled(bool pipelining_ehlo = true) {
    ScriptedStream& s = connector.last();
    s.connected(0);
    s.inject("220 mx.example ESMTP\r\n");
    if (!runtime->config.downstream.pool_ehlo.empty()) {
      CHECK(s.take_written() == "EHLO " + runtime->config.downstream.pool_ehlo + "\r\n");
      s.inject(pipelining_ehlo ? "250-mx.example\r\n250 PIPELINING\r\n" : "250 mx.example\r\n");
    }
    REQUIRE(pool->idle_count() == 1);
    return s;
  }
};

// The client's EHLO relayed and answered on the link's connection.
void say_ehlo(Fixture& f, ScriptedStream& s) {
  f.link->send_command("EHLO client.example\r\n");
  CHECK(s.take_written() == "EHLO client.example\r\n");
  s.inject("250 mx.example\r\n");
}

const std::string kFailConnect = std::to_string(static_cast<int>(metrics::DownstreamError::Connect));
const std::string kFailProtocol = std::to_string(static_cast<int>(metrics::DownstreamError::Protocol));
const std::string kFailClosed = std::to_string(static_cast<int>(metrics::DownstreamError::Closed));
const std::string kFailTimeout = std::to_string(static_cast<int>(metrics::DownstreamError::Timeout));

}  // namespace

TEST_CASE("fresh, for the client's greeting: connect, greeting handed over, ready") {
  Fixture f;
  f.link->open(plan(true, ""));
  REQUIRE(f.connector.made.size() == 1);
  CHECK(f.link->phase() == proxy::DownstreamLink::Phase::Connecting);
  ScriptedStream& s = f.connector.last();
  s.connected(0);
  CHECK(s.reading());
  CHECK(f.link->phase() == proxy::DownstreamLink::Phase::Handshake);
  s.inject("220 mx.example ESMTP\r\n");
  CHECK(f.owner.events == std::vector<std::string>{"greeting 220", "ready"});
  CHECK(f.link->ready());
  CHECK(s.take_written().empty());  // nothing said to the MTA before the client speaks
}

TEST_CASE("fresh, the greeting split over reads: nothing until it is whole") {
  Fixture f;
  f.link->open(plan(true, ""));
  ScriptedStream& s = f.connector.last();
  s.connected(0);
  s.inject("220-mx.example\r\n22");
  CHECK(f.owner.events.empty());
  s.inject("0 ESMTP\r\n");
  CHECK(f.owner.events == std::vector<std::string>{"greeting 220", "ready"});
}

TEST_CASE("the connect fails: at once, or when it completes") {
  Fixture f;
  f.connector.fail_with = UV_EADDRNOTAVAIL;
  f.link->open(plan(true, ""));
  REQUIRE(f.owner.events.size() == 1);
  CHECK(f.owner.events[0].rfind("failed " + kFailConnect + " 421", 0) == 0);

  Fixture g;
  g.link->open(plan(true, ""));
  g.connector.last().connected(UV_ECONNREFUSED);
  REQUIRE(g.owner.events.size() == 1);
  CHECK(g.owner.events[0].rfind("failed " + kFailConnect + " 421", 0) == 0);
  CHECK_FALSE(g.reachable.load());
}

TEST_CASE("reconnection: the client's EHLO replayed after a 2xx greeting, capabilities learnt") {
  Fixture f;
  f.link->open(plan(false, "EHLO client.example"));
  ScriptedStream& s = f.connector.last();
  s.connected(0);
  s.inject("220 mx.example ESMTP\r\n");
  CHECK(f.owner.events.empty());  // no greeting for a client that had its own long ago
  CHECK(s.take_written() == "EHLO client.example\r\n");
  s.inject("250-mx.example\r\n250 PIPELINING\r\n");
  CHECK(f.owner.events == std::vector<std::string>{"ready"});
  CHECK(f.link->pipelining());
}

TEST_CASE("a refused greeting on a reconnection: failed, no EHLO said") {
  Fixture f;
  f.link->open(plan(false, "EHLO client.example"));
  ScriptedStream& s = f.connector.last();
  s.connected(0);
  s.inject("554 5.7.1 go away\r\n");
  REQUIRE(f.owner.events.size() == 1);
  CHECK(f.owner.events[0] == "failed " + kFailProtocol + " 421 greeting 554");
  CHECK(s.take_written().empty());
}

TEST_CASE("the replayed EHLO refused: failed") {
  Fixture f;
  f.link->open(plan(false, "EHLO client.example"));
  ScriptedStream& s = f.connector.last();
  s.connected(0);
  s.inject("220 mx.example ESMTP\r\n");
  s.inject("550 5.7.1 not you\r\n");
  REQUIRE(f.owner.events.size() == 1);
  CHECK(f.owner.events[0] == "failed " + kFailProtocol + " 421 EHLO refused: 550");
}

TEST_CASE("the MTA gone mid-handshake: failed as a lost connection") {
  Fixture f;
  f.link->open(plan(false, "EHLO client.example"));
  ScriptedStream& s = f.connector.last();
  s.connected(0);
  s.inject("220 mx.example ESMTP\r\n");
  s.end(UV_EOF);
  REQUIRE(f.owner.events.size() == 1);
  CHECK(f.owner.events[0] == "failed " + kFailClosed + " 421 connection closed");
}

TEST_CASE("a broken reply line: protocol failure") {
  Fixture f;
  f.link->open(plan(true, ""));
  ScriptedStream& s = f.connector.last();
  s.connected(0);
  s.inject("hello there\r\n");
  REQUIRE(f.owner.events.size() == 1);
  CHECK(f.owner.events[0].rfind("failed " + kFailProtocol + " 421", 0) == 0);
}

TEST_CASE("commands: replies in order, one owed each; a reply nobody asked for is dropped") {
  Fixture f;
  ScriptedStream& s = f.open_ready();
  f.link->send_command("MAIL FROM:<a@x>\r\n");
  f.link->send_command("RCPT TO:<b@x>\r\n");
  CHECK(f.link->in_flight() == 2);
  CHECK(s.take_written() == "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n");
  s.inject("250 ok\r\n550 no\r\n421 bye\r\n");
  CHECK(f.owner.events == std::vector<std::string>{"reply 250", "reply 550"});
  CHECK(f.link->in_flight() == 0);
}

TEST_CASE("the MTA closes a ready connection: idle or not, the owner decides") {
  Fixture f;
  ScriptedStream& s = f.open_ready();
  s.end(UV_EOF);
  CHECK(f.owner.events == std::vector<std::string>{"closed idle connection closed"});

  Fixture g;
  ScriptedStream& t = g.open_ready();
  g.link->send_command("MAIL FROM:<a@x>\r\n");
  t.end(UV_ECONNRESET, "connection reset by peer");
  CHECK(g.owner.events == std::vector<std::string>{"closed busy connection reset by peer"});
}

TEST_CASE("reset drops the connection: closed, nothing more reaches the owner") {
  Fixture f;
  ScriptedStream& s = f.open_ready();
  auto probe = f.connector.made.back().probe;
  f.link->send_command("DATA\r\n");
  f.link->reset();
  CHECK(probe->closed);
  CHECK_FALSE(probe->flushed_close);  // an abort: never a dot, nothing flushed
  CHECK(f.link->phase() == proxy::DownstreamLink::Phase::None);
  CHECK(f.link->in_flight() == 0);
  CHECK(s.events() == &net::Stream::nowhere());
}

TEST_CASE("the owner closes from inside the greeting: the link stops at once") {
  Fixture f;
  f.owner.on_greeting = [&] { f.link->reset(); };  // what a 421 or 554 greeting does
  f.link->open(plan(true, ""));
  ScriptedStream& s = f.connector.last();
  s.connected(0);
  s.inject("554 5.7.1 no service\r\n");
  CHECK(f.owner.events == std::vector<std::string>{"greeting 554"});
  CHECK(f.link->phase() == proxy::DownstreamLink::Phase::None);
}

TEST_CASE("connect timeout: the link's timer fails it") {
  Fixture f;
  f.link->open(plan(true, ""));
  for (int i = 0; i < 100 && f.owner.events.empty(); ++i) uv_run(&f.loop, UV_RUN_ONCE);
  REQUIRE(f.owner.events.size() == 1);
  CHECK(f.owner.events[0] == "failed " + kFailConnect + " 421 connect timeout");
}

TEST_CASE("reply timeout: a command owed too long fails the link") {
  Fixture f;
  ScriptedStream& s = f.open_ready();
  f.link->send_command("MAIL FROM:<a@x>\r\n");
  CHECK(s.take_written() == "MAIL FROM:<a@x>\r\n");
  for (int i = 0; i < 100 && f.owner.events.empty(); ++i) uv_run(&f.loop, UV_RUN_ONCE);
  REQUIRE(f.owner.events.size() == 1);
  CHECK(f.owner.events[0] == "failed " + kFailTimeout + " 421 reply timeout");
}

TEST_CASE("pooled, for the client's greeting: the pool's greeting at once, no connect") {
  Fixture f(make_runtime(1));
  f.greet_pooled();
  std::size_t made = f.connector.made.size();
  f.link->open(plan(true, ""));
  CHECK(f.owner.events == std::vector<std::string>{"greeting 220", "ready"});
  CHECK(f.pool->idle_count() == 0);
  CHECK(f.connector.made.size() == made);  // the refill waits for the loop, and no fresh connect
}

TEST_CASE("pooled, found dead before it answered: a fresh connection, the command sent again") {
  Fixture f(make_runtime(1));
  ScriptedStream& pooled = f.greet_pooled();
  f.link->open(plan(true, ""));
  f.owner.events.clear();
  f.link->send_command("EHLO client.example\r\n");
  pooled.end(UV_EOF);  // the MTA had closed it a moment before
  CHECK(f.owner.events.empty());  // the client notices nothing
  ScriptedStream& fresh = f.connector.last();
  CHECK(&fresh != &pooled);
  fresh.connected(0);
  fresh.inject("220 mx.example ESMTP\r\n");
  CHECK(f.owner.events == std::vector<std::string>{"ready"});
  CHECK(fresh.take_written() == "EHLO client.example\r\n");
  fresh.inject("250 mx.example\r\n");
  CHECK(f.owner.events == std::vector<std::string>{"ready", "reply 250"});
}

TEST_CASE("pooled with pool.ehlo: the same EHLO first is answered from what the pool said") {
  Fixture f(make_runtime(1, "client.example"));
  ScriptedStream& pooled = f.greet_pooled();
  f.link->open(plan(true, ""));
  CHECK(f.owner.events == std::vector<std::string>{"greeting 220", "ready"});
  CHECK_FALSE(f.link->pipelining());  // not before the client says that EHLO
  smtp::Command ehlo = smtp::parse_command("EHLO client.example");
  CHECK(f.link->fits_first_command(ehlo));
  auto reply = f.link->take_speculated_reply(ehlo);
  REQUIRE(reply);
  CHECK(reply->code == 250);
  CHECK(f.link->pipelining());
  CHECK(pooled.take_written().empty());  // nothing said again
  CHECK_FALSE(f.link->take_speculated_reply(ehlo));  // once
}

TEST_CASE("pooled with pool.ehlo: another first command retires it unused, and no pool for this session") {
  Fixture f(make_runtime(1, "client.example"));
  ScriptedStream& pooled = f.greet_pooled();
  f.link->open(plan(true, ""));
  smtp::Command other = smtp::parse_command("EHLO other.example");
  CHECK_FALSE(f.link->fits_first_command(other));
  CHECK(f.link->phase() == proxy::DownstreamLink::Phase::None);
  CHECK(pooled.take_written() == "QUIT\r\n");  // the pool says QUIT: it never carried this client
  CHECK(pooled.events() == f.pool.get());
  std::size_t made = f.connector.made.size();
  f.link->open(plan(false, ""));
  CHECK(f.connector.made.size() == made + 1);  // fresh, not from the pool
}

TEST_CASE("pooled with pool.ehlo, for a replay of that EHLO: ready at once") {
  Fixture f(make_runtime(1, "client.example"));
  ScriptedStream& pooled = f.greet_pooled();
  f.link->open(plan(false, "EHLO client.example"));
  CHECK(f.owner.events == std::vector<std::string>{"ready"});
  CHECK(f.link->pipelining());
  CHECK(pooled.take_written().empty());
}

TEST_CASE("pooled with pool.ehlo, for a replay of another EHLO: retired, a fresh connection replays") {
  Fixture f(make_runtime(1, "client.example"));
  ScriptedStream& pooled = f.greet_pooled();
  std::size_t made = f.connector.made.size();
  f.link->open(plan(false, "EHLO other.example"));
  CHECK(pooled.take_written() == "QUIT\r\n");
  REQUIRE(f.connector.made.size() == made + 1);
  ScriptedStream& fresh = f.connector.last();
  fresh.connected(0);
  fresh.inject("220 mx.example ESMTP\r\n");
  CHECK(fresh.take_written() == "EHLO other.example\r\n");
  fresh.inject("250 mx.example\r\n");
  CHECK(f.owner.events == std::vector<std::string>{"ready"});
}

TEST_CASE("retire at QUIT: the pool says QUIT; with max_sessions the connection goes back for the next client") {
  Fixture f(make_runtime(1));
  ScriptedStream& pooled = f.greet_pooled();
  f.link->open(plan(true, ""));
  CHECK(f.link->retire(/*reusable=*/true, /*client_said_helo=*/true));
  CHECK(pooled.take_written() == "QUIT\r\n");  // max_sessions 1: no reuse
  CHECK(f.link->phase() == proxy::DownstreamLink::Phase::None);

  Fixture g(make_runtime(1, "", 5));
  ScriptedStream& kept = g.greet_pooled();
  g.link->open(plan(true, ""));
  say_ehlo(g, kept);  // max_idle counts from the last command the MTA saw
  CHECK(g.link->retire(true, true));
  CHECK(kept.take_written().empty());
  CHECK(g.pool->idle_count() == 1);
  CHECK(kept.events() == g.pool.get());
}

TEST_CASE("a reused connection (an earlier client's HELO on it) needs HELO or EHLO first") {
  Fixture f(make_runtime(1, "", 5));
  ScriptedStream& s = f.greet_pooled();
  f.link->open(plan(true, ""));
  say_ehlo(f, s);
  REQUIRE(f.link->retire(true, true));
  f.owner.events.clear();
  f.link->open(plan(true, ""));
  CHECK(f.owner.events == std::vector<std::string>{"greeting 220", "ready"});
  CHECK_FALSE(f.link->fits_first_command(smtp::parse_command("MAIL FROM:<a@x>")));
  CHECK(f.link->phase() == proxy::DownstreamLink::Phase::None);

  Fixture g(make_runtime(1, "", 5));
  ScriptedStream& t = g.greet_pooled();
  g.link->open(plan(true, ""));
  say_ehlo(g, t);
  REQUIRE(g.link->retire(true, true));
  g.link->open(plan(true, ""));
  CHECK(g.link->fits_first_command(smtp::parse_command("EHLO next.example")));
  CHECK(g.link->ready());
}
