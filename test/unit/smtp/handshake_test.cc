// Unit tests for lib/smtp/handshake: every way a downstream connection becomes ready (fresh for a
// client's greeting, fresh for a reconnection with the hello replayed, the pool's with its EHLO
// said ahead, resumed by a session), and every way it does not (a refused greeting, a refused
// hello, a pooled connection that holds another hello, a reply after the end).
#include <doctest/doctest.h>

#include "lib/smtp/handshake.h"

using namespace dotgate::smtp;

namespace {
const Reply kGreeting = Reply::make(220, "", "mx.example ESMTP");
Reply ehlo_reply(bool pipelining) {
  Reply r{250, {"mx.example", "SIZE 1000"}};
  if (pipelining) r.lines.push_back("PIPELINING");
  return r;
}
}  // namespace

TEST_CASE("fresh, for a client waiting for its greeting: the greeting is handed over, then ready") {
  Handshake h({.relay_greeting = true, .hello = ""});
  CHECK(h.step() == Handshake::Step::Greeting);
  auto out = h.feed(kGreeting);
  REQUIRE(out.greeting);
  CHECK(out.greeting->code == 220);
  CHECK(out.send.empty());
  CHECK(out.ready);
  CHECK_FALSE(out.failed);
  CHECK(h.step() == Handshake::Step::Ready);
  CHECK(h.hello().empty());
}

TEST_CASE("fresh, for a waiting client: a 421 or 554 greeting is the client's to judge, not a failure") {
  for (int code : {421, 554}) {
    Handshake h({.relay_greeting = true, .hello = "EHLO ignored"});
    auto out = h.feed(Reply::make(code, "", "busy"));
    REQUIRE(out.greeting);
    CHECK(out.greeting->code == code);
    CHECK(out.ready);
    CHECK(out.send.empty());  // nothing more is said to an MTA that refused
    CHECK_FALSE(out.failed);
  }
}

TEST_CASE("reconnection: a 2xx greeting, the client's EHLO replayed, its capabilities learnt") {
  Handshake h({.relay_greeting = false, .hello = "EHLO client.example"});
  auto out = h.feed(kGreeting);
  CHECK_FALSE(out.greeting);  // the client saw its greeting long ago
  CHECK(out.send == "EHLO client.example\r\n");
  CHECK_FALSE(out.ready);
  CHECK(h.step() == Handshake::Step::Hello);
  out = h.feed(ehlo_reply(true));
  CHECK(out.ready);
  CHECK(out.send.empty());
  CHECK(h.capabilities().pipelining);
  CHECK(h.hello() == "EHLO client.example");
  REQUIRE(h.hello_reply());
  CHECK(h.hello_reply()->code == 250);
}

TEST_CASE("reconnection with HELO: no capabilities") {
  Handshake h({.relay_greeting = false, .hello = "HELO client.example"});
  CHECK(h.feed(kGreeting).send == "HELO client.example\r\n");
  auto out = h.feed(Reply::make(250, "", "mx.example"));
  CHECK(out.ready);
  CHECK_FALSE(h.capabilities().pipelining);
}

TEST_CASE("reconnection without a hello (the client's EHLO is the next command): ready at the greeting") {
  Handshake h({.relay_greeting = false, .hello = ""});
  auto out = h.feed(kGreeting);
  CHECK(out.ready);
  CHECK(out.send.empty());
}

TEST_CASE("refused greeting on a connection nobody waits on: failed, with the reply") {
  for (int code : {421, 450, 554}) {
    Handshake h({.relay_greeting = false, .hello = "EHLO client.example"});
    auto out = h.feed(Reply::make(code, "", "go away"));
    REQUIRE(out.failed);
    CHECK(out.failed->find(std::to_string(code)) != std::string::npos);
    REQUIRE(out.failed_reply);
    CHECK(out.failed_reply->code == code);
    CHECK(out.send.empty());  // no EHLO to an MTA that refused
    CHECK_FALSE(out.ready);
    CHECK(h.step() == Handshake::Step::Failed);
  }
}

TEST_CASE("EHLO refused: failed, naming the command and the code") {
  Handshake h({.relay_greeting = false, .hello = "EHLO client.example"});
  h.feed(kGreeting);
  auto out = h.feed(Reply::make(554, "5.7.1", "not you"));
  REQUIRE(out.failed);
  CHECK(*out.failed == "EHLO refused: 554");
  CHECK_FALSE(out.ready);
}

TEST_CASE("a reply after the handshake is a failure (the MTA answers what was never asked)") {
  Handshake h({.relay_greeting = false, .hello = ""});
  h.feed(kGreeting);
  auto out = h.feed(Reply::make(250, "", "what?"));
  REQUIRE(out.failed);
  CHECK(h.step() == Handshake::Step::Failed);
}

TEST_CASE("the pool: greeting, its own EHLO said ahead, ready with the reply kept") {
  Handshake pool({.relay_greeting = false, .hello = "EHLO pool.example"});
  CHECK(pool.feed(kGreeting).send == "EHLO pool.example\r\n");
  CHECK(pool.feed(ehlo_reply(true)).ready);
  CHECK(pool.greeting()->code == 220);
  CHECK(pool.hello() == "EHLO pool.example");
}

TEST_CASE("pooled, resumed for a client waiting for its greeting: the held greeting goes to it, the EHLO stays held") {
  Handshake h({.relay_greeting = true, .hello = ""});
  auto out = h.resume({kGreeting, "EHLO pool.example", ehlo_reply(true)});
  REQUIRE(out.greeting);
  CHECK(out.greeting->code == 220);
  CHECK(out.ready);
  CHECK(out.send.empty());
  CHECK(h.hello() == "EHLO pool.example");  // held: a first command that is exactly it may use it
}

TEST_CASE("pooled, resumed for a replay of the very EHLO it said: ready at once, nothing sent") {
  Handshake h({.relay_greeting = false, .hello = "EHLO pool.example"});
  auto out = h.resume({kGreeting, "EHLO pool.example", ehlo_reply(true)});
  CHECK(out.ready);
  CHECK(out.send.empty());
  CHECK_FALSE(out.greeting);
  CHECK(h.capabilities().pipelining);
}

TEST_CASE("pooled, resumed for a replay of another EHLO: failed, nothing sent (the MTA holds a state the client did not cause)") {
  Handshake h({.relay_greeting = false, .hello = "EHLO client.example"});
  auto out = h.resume({kGreeting, "EHLO pool.example", ehlo_reply(true)});
  REQUIRE(out.failed);
  CHECK(out.send.empty());
  CHECK_FALSE(out.ready);
}

TEST_CASE("pooled without an EHLO, resumed for a replay: the hello is said now") {
  Handshake h({.relay_greeting = false, .hello = "EHLO client.example"});
  auto out = h.resume({kGreeting, "", std::nullopt});
  CHECK(out.send == "EHLO client.example\r\n");
  CHECK_FALSE(out.ready);
  out = h.feed(ehlo_reply(false));
  CHECK(out.ready);
  CHECK_FALSE(h.capabilities().pipelining);
}
