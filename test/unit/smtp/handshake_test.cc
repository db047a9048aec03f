// Unit tests for lib/smtp/handshake: every way a downstream connection becomes ready (fresh for a
// client's greeting, fresh for a reconnection with the hello replayed, the pool's with its EHLO
// said ahead, resumed by a session), and every way it does not (a refused greeting, a refused
// hello, a pooled connection that holds another hello, a reply after the end).
#include <doctest/doctest.h>

#include "lib/smtp/handshake.h"

using namespace dotgate::smtp;

namespace {
// A plan without XCLIENT (designated initializers would leave members out).
Handshake::Plan plan(bool relay_greeting, std::string hello) {
  Handshake::Plan p;
  p.relay_greeting = relay_greeting;
  p.hello = std::move(hello);
  return p;
}
const Reply kGreeting = Reply::make(220, "", "mx.example ESMTP");
Reply ehlo_reply(bool pipelining) {
  Reply r{250, {"mx.example", "SIZE 1000"}};
  if (pipelining) r.lines.push_back("PIPELINING");
  return r;
}
}  // namespace

TEST_CASE("fresh, for a client waiting for its greeting: the greeting is handed over, then ready") {
  Handshake h(plan(true, ""));
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
    Handshake h(plan(true, "EHLO ignored"));
    auto out = h.feed(Reply::make(code, "", "busy"));
    REQUIRE(out.greeting);
    CHECK(out.greeting->code == code);
    CHECK(out.ready);
    CHECK(out.send.empty());  // nothing more is said to an MTA that refused
    CHECK_FALSE(out.failed);
  }
}

TEST_CASE("reconnection: a 2xx greeting, the client's EHLO replayed, its capabilities learnt") {
  Handshake h(plan(false, "EHLO client.example"));
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
  Handshake h(plan(false, "HELO client.example"));
  CHECK(h.feed(kGreeting).send == "HELO client.example\r\n");
  auto out = h.feed(Reply::make(250, "", "mx.example"));
  CHECK(out.ready);
  CHECK_FALSE(h.capabilities().pipelining);
}

TEST_CASE("reconnection without a hello (the client's EHLO is the next command): ready at the greeting") {
  Handshake h(plan(false, ""));
  auto out = h.feed(kGreeting);
  CHECK(out.ready);
  CHECK(out.send.empty());
}

TEST_CASE("refused greeting on a connection nobody waits on: failed, with the reply") {
  for (int code : {421, 450, 554}) {
    Handshake h(plan(false, "EHLO client.example"));
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
  Handshake h(plan(false, "EHLO client.example"));
  h.feed(kGreeting);
  auto out = h.feed(Reply::make(554, "5.7.1", "not you"));
  REQUIRE(out.failed);
  CHECK(*out.failed == "EHLO refused: 554");
  CHECK_FALSE(out.ready);
}

TEST_CASE("a reply after the handshake is a failure (the MTA answers what was never asked)") {
  Handshake h(plan(false, ""));
  h.feed(kGreeting);
  auto out = h.feed(Reply::make(250, "", "what?"));
  REQUIRE(out.failed);
  CHECK(h.step() == Handshake::Step::Failed);
}

TEST_CASE("the pool: greeting, its own EHLO said ahead, ready with the reply kept") {
  Handshake pool(plan(false, "EHLO pool.example"));
  CHECK(pool.feed(kGreeting).send == "EHLO pool.example\r\n");
  CHECK(pool.feed(ehlo_reply(true)).ready);
  CHECK(pool.greeting()->code == 220);
  CHECK(pool.hello() == "EHLO pool.example");
}

TEST_CASE("pooled, resumed for a client waiting for its greeting: the held greeting goes to it, the EHLO stays held") {
  Handshake h(plan(true, ""));
  auto out = h.resume({kGreeting, "EHLO pool.example", ehlo_reply(true)});
  REQUIRE(out.greeting);
  CHECK(out.greeting->code == 220);
  CHECK(out.ready);
  CHECK(out.send.empty());
  CHECK(h.hello() == "EHLO pool.example");  // held: a first command that is exactly it may use it
}

TEST_CASE("pooled, resumed for a replay of the very EHLO it said: ready at once, nothing sent") {
  Handshake h(plan(false, "EHLO pool.example"));
  auto out = h.resume({kGreeting, "EHLO pool.example", ehlo_reply(true)});
  CHECK(out.ready);
  CHECK(out.send.empty());
  CHECK_FALSE(out.greeting);
  CHECK(h.capabilities().pipelining);
}

TEST_CASE("pooled, resumed for a replay of another EHLO: failed, nothing sent (the MTA holds a state the client did not cause)") {
  Handshake h(plan(false, "EHLO client.example"));
  auto out = h.resume({kGreeting, "EHLO pool.example", ehlo_reply(true)});
  REQUIRE(out.failed);
  CHECK(out.send.empty());
  CHECK_FALSE(out.ready);
}

TEST_CASE("pooled without an EHLO, resumed for a replay: the hello is said now") {
  Handshake h(plan(false, "EHLO client.example"));
  auto out = h.resume({kGreeting, "", std::nullopt});
  CHECK(out.send == "EHLO client.example\r\n");
  CHECK_FALSE(out.ready);
  out = h.feed(ehlo_reply(false));
  CHECK(out.ready);
  CHECK_FALSE(h.capabilities().pipelining);
}

namespace {
Handshake::Plan xclient_plan(bool relay_greeting, std::string hello) {
  Handshake::Plan p = plan(relay_greeting, std::move(hello));
  ClientIdentity who;
  who.name = "[UNAVAILABLE]";
  who.addr = "192.0.2.7";
  who.port = "4711";
  p.xclient = std::make_shared<const ClientIdentity>(who);
  p.own_hello = "EHLO dotgate.example";
  return p;
}
const Reply kEhloWithXclient{250, {"mx.example", "PIPELINING", "XCLIENT NAME ADDR PORT PROTO HELO"}};
}  // namespace

TEST_CASE("XCLIENT: own EHLO, XCLIENT with the real client, and the MTA's new 220 is the client's greeting") {
  Handshake h(xclient_plan(true, ""));
  auto out = h.feed(kGreeting);
  CHECK_FALSE(out.greeting);  // held: the MTA's word on the real client comes after XCLIENT
  CHECK(out.send == "EHLO dotgate.example\r\n");
  out = h.feed(kEhloWithXclient);
  CHECK(out.send == "XCLIENT PORT=4711 NAME=[UNAVAILABLE] ADDR=192.0.2.7\r\n");  // ADDR last
  CHECK_FALSE(out.ready);
  out = h.feed(Reply::make(220, "", "mx.example ESMTP for 192.0.2.7"));
  REQUIRE(out.greeting);
  CHECK(out.greeting->lines[0] == "mx.example ESMTP for 192.0.2.7");
  CHECK(out.ready);
  CHECK(h.identity_sent());
  CHECK(h.hello().empty());  // XCLIENT started the MTA over: the client's EHLO comes next
}

TEST_CASE("XCLIENT on a reconnection: after XCLIENT the client's EHLO is replayed") {
  Handshake h(xclient_plan(false, "EHLO client.example"));
  CHECK(h.feed(kGreeting).send == "EHLO dotgate.example\r\n");
  CHECK(h.feed(kEhloWithXclient).send.rfind("XCLIENT ", 0) == 0);
  auto out = h.feed(Reply::make(220, "", "mx.example ESMTP"));
  CHECK_FALSE(out.greeting);
  CHECK(out.send == "EHLO client.example\r\n");
  out = h.feed(ehlo_reply(true));
  CHECK(out.ready);
  CHECK(h.capabilities().pipelining);
}

TEST_CASE("XCLIENT not announced: the original greeting, no XCLIENT, the MTA sees dotgate") {
  Handshake h(xclient_plan(true, ""));
  h.feed(kGreeting);
  auto out = h.feed(ehlo_reply(true));
  REQUIRE(out.greeting);
  CHECK(out.greeting->lines[0] == "mx.example ESMTP");
  CHECK(out.send.empty());
  CHECK(out.ready);
  CHECK_FALSE(h.identity_sent());
}

TEST_CASE("XCLIENT refused: failed (an MTA that takes dotgate for the client may trust it)") {
  Handshake h(xclient_plan(true, ""));
  h.feed(kGreeting);
  h.feed(kEhloWithXclient);
  auto out = h.feed(Reply::make(550, "5.7.0", "insufficient authorization"));
  REQUIRE(out.failed);
  CHECK(*out.failed == "XCLIENT refused: 550");
  CHECK_FALSE(out.greeting);  // the client hears dotgate's 421, not this
}

TEST_CASE("XCLIENT answered 421 or 554: the MTA's greeting for the real client, the waiting client's to hear") {
  for (int code : {421, 554}) {
    CAPTURE(code);
    Handshake h(xclient_plan(true, ""));
    h.feed(kGreeting);
    h.feed(kEhloWithXclient);
    auto out = h.feed(Reply::make(code, code == 421 ? "4.7.0" : "5.7.1", "<unknown[192.0.2.7]>: Client host rejected"));
    CHECK_FALSE(out.failed);
    REQUIRE(out.greeting);
    CHECK(out.greeting->code == code);
    CHECK(out.send.empty());
    CHECK(out.ready);
    CHECK(h.identity_sent());  // the MTA holds the real client: no other client on it
  }
}

TEST_CASE("XCLIENT answered 554 on a reconnection (nobody waits for a greeting): failed") {
  Handshake h(xclient_plan(false, "EHLO client.example"));
  h.feed(kGreeting);
  h.feed(kEhloWithXclient);
  auto out = h.feed(Reply::make(554, "5.7.1", "Client host rejected"));
  REQUIRE(out.failed);
  CHECK(*out.failed == "XCLIENT refused: 554");
  CHECK_FALSE(out.greeting);
}

TEST_CASE("XCLIENT in two commands: a 554 to the first is a refusal, to the last the client's greeting") {
  Handshake::Plan p = xclient_plan(true, "");
  ClientIdentity who = *p.xclient;
  who.helo = std::string(250, 'h');  // HELO and LOGIN do not fit in one 512-octet line
  who.login = std::string(250, 'l');
  p.xclient = std::make_shared<const ClientIdentity>(who);
  const Reply ehlo{250, {"mx.example", "XCLIENT NAME ADDR PORT PROTO HELO LOGIN"}};
  for (bool first : {true, false}) {
    CAPTURE(first);
    Handshake h(p);
    h.feed(kGreeting);
    auto out = h.feed(ehlo);
    REQUIRE(out.send.rfind("XCLIENT HELO=", 0) == 0);
    if (!first) {
      out = h.feed(Reply::make(220, "", "mx.example ESMTP"));
      REQUIRE(out.send.rfind("XCLIENT LOGIN=", 0) == 0);
    }
    out = h.feed(Reply::make(554, "5.7.1", "no"));
    CHECK(out.failed.has_value() == first);
    CHECK(out.greeting.has_value() == !first);
  }
}

TEST_CASE("XCLIENT on a pooled connection whose EHLO is known: no EHLO of its own, XCLIENT at once") {
  Handshake h(xclient_plan(true, ""));
  auto out = h.resume({kGreeting, "EHLO pool.example", kEhloWithXclient});
  CHECK_FALSE(out.greeting);
  CHECK(out.send.rfind("XCLIENT ", 0) == 0);
  out = h.feed(Reply::make(220, "", "mx.example ESMTP"));
  CHECK(out.greeting);
  CHECK(out.ready);
}

namespace {
Handshake::Plan tls_plan(Handshake::Plan::Tls mode) {
  Handshake::Plan p = plan(true, "");
  p.starttls = mode;
  p.own_hello = "EHLO dotgate.example";
  return p;
}
const Reply kEhloWithStarttls{250, {"mx.example", "PIPELINING", "STARTTLS"}};
}  // namespace

TEST_CASE("STARTTLS to the MTA: own EHLO, STARTTLS, 220, wrap; under TLS the EHLO again, then the greeting") {
  Handshake h(tls_plan(Handshake::Plan::Tls::Required));
  CHECK(h.feed(kGreeting).send == "EHLO dotgate.example\r\n");
  CHECK(h.feed(kEhloWithStarttls).send == "STARTTLS\r\n");
  auto out = h.feed(Reply::make(220, "2.0.0", "Ready to start TLS"));
  CHECK(out.start_tls);
  CHECK(out.send.empty());
  CHECK_FALSE(out.ready);
  out = h.tls_established();
  CHECK(h.tls_on());
  // The client's own EHLO comes next and is relayed under TLS; nothing more to say now.
  CHECK(out.send.empty());
  REQUIRE(out.greeting);
  CHECK(out.greeting->code == 220);
  CHECK(out.ready);
  CHECK(h.hello().empty());  // the pre-TLS EHLO is forgotten (RFC 3207 4.2)
}

TEST_CASE("STARTTLS then XCLIENT: the capabilities are learnt again under TLS before XCLIENT") {
  Handshake::Plan p = tls_plan(Handshake::Plan::Tls::Required);
  ClientIdentity who;
  who.addr = "192.0.2.7";
  p.xclient = std::make_shared<const ClientIdentity>(who);
  Handshake h(p);
  h.feed(kGreeting);
  h.feed(Reply{250, {"mx.example", "STARTTLS"}});  // XCLIENT announced only under TLS
  CHECK(h.feed(Reply::make(220, "2.0.0", "go")).start_tls);
  CHECK(h.tls_established().send == "EHLO dotgate.example\r\n");
  auto out = h.feed(kEhloWithXclient);
  CHECK(out.send == "XCLIENT ADDR=192.0.2.7\r\n");
  out = h.feed(Reply::make(220, "", "mx.example ESMTP"));
  CHECK(out.ready);
  CHECK(h.identity_sent());
}

TEST_CASE("STARTTLS opportunistic: not announced, or refused with 454, goes on in plain text") {
  Handshake h(tls_plan(Handshake::Plan::Tls::Opportunistic));
  h.feed(kGreeting);
  auto out = h.feed(ehlo_reply(true));
  CHECK(out.ready);
  CHECK_FALSE(h.tls_on());

  Handshake r(tls_plan(Handshake::Plan::Tls::Opportunistic));
  r.feed(kGreeting);
  r.feed(kEhloWithStarttls);
  out = r.feed(Reply::make(454, "4.7.0", "TLS not available"));
  CHECK(out.ready);
  CHECK_FALSE(out.start_tls);
}

TEST_CASE("STARTTLS required: not announced, or refused, fails the connection") {
  Handshake h(tls_plan(Handshake::Plan::Tls::Required));
  h.feed(kGreeting);
  auto out = h.feed(ehlo_reply(true));
  REQUIRE(out.failed);
  CHECK(*out.failed == "STARTTLS not offered");

  Handshake r(tls_plan(Handshake::Plan::Tls::Required));
  r.feed(kGreeting);
  r.feed(kEhloWithStarttls);
  out = r.feed(Reply::make(454, "4.7.0", "TLS not available"));
  REQUIRE(out.failed);
  CHECK(*out.failed == "STARTTLS refused: 454");
}
