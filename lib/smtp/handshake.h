// lib/smtp/handshake.h — the one way a downstream connection becomes ready: the SMTP client's
// opening, as a pure state machine (replies in, what to send and what happened out).
//
// Every downstream connection goes through it, whatever opened it: a session's fresh connection
// for its client's greeting, the pool's pre-greeted ones, the reconnection after an aborted
// transaction (the client's HELO/EHLO replayed), the replay of an edited message, the fresh
// connection that replaces a pooled one found dead. Steps, in order:
//   1. greeting  — relayed to a client that waits for it (whatever its code: the session
//                  normalises it), else it must be a 2xx;
//   2. identity  — with plan.xclient: dotgate's own EHLO (unless the capabilities are known from
//                  a pooled connection's), then XCLIENT with the real client's attributes when the
//                  MTA announces it (Postfix's XCLIENT_README). Each XCLIENT is answered 220: the
//                  MTA starts over as if the real client had connected, and that 220 is the greeting
//                  a waiting client gets (the MTA's word on the real client, not on dotgate), and
//                  so is a 421 or 554 there (Postfix greets the real client with its refusal: too
//                  many connections, smtpd_client_restrictions with smtpd_delay_reject=no). A
//                  refused XCLIENT (501, 503, 550; a 421/554 that no client waits for) fails the
//                  connection: an MTA that takes dotgate for the client may trust it (mynetworks)
//                  where it must not trust the internet. An MTA that does
//                  not announce XCLIENT gets none; the handshake goes on.
//                  The caller fills plan.xclient; build_xclient (xclient.h) words it for what
//                  the MTA announced.
//      Before XCLIENT, with plan.starttls: STARTTLS when the MTA announces it (dotgate's own EHLO
//      tells), 220, then Output::start_tls: the owner wraps the connection in TLS and calls
//      tls_established() once the TLS handshake is done; the MTA forgets everything (RFC 3207
//      4.2), so dotgate's EHLO is said again under TLS. Opportunistic: an MTA that does not
//      announce it, or refuses it (454), is spoken to in plain text. Required: that fails.
//   3. hello     — the HELO/EHLO the plan names (the client's, replayed; the pool's EHLO said
//                  ahead of a client), which must be answered 2xx; its capabilities are learnt;
//   4. ready.
// A connection someone else greeted (the pool) is resumed with what it holds: its greeting and
// the hello said on it. Resuming with a plan whose hello is another than the one held fails (the
// MTA holds a state the client did not cause).
// Protocol checks that are not the handshake's (a reply with bytes after it, a broken line) stay
// with the owner of the socket; the machine sees one complete reply at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "lib/smtp/ehlo.h"
#include "lib/smtp/reply.h"
#include "lib/smtp/xclient.h"

namespace dotgate::smtp {

class Handshake {
 public:
  struct Plan {
    bool relay_greeting = false;  // the client waits for this greeting: hand it over as it is
    std::string hello;            // "EHLO name" / "HELO name" (no CRLF) to say once greeted; "" none
    // The real client, for an MTA that takes XCLIENT. Shared, not held by value: a plan lives as
    // long as its connection, in every session, and most sessions never need it (~400 bytes).
    std::shared_ptr<const ClientIdentity> xclient;
    std::string own_hello;                  // "EHLO <dotgate's name>": to learn the capabilities
    enum class Tls { Off, Opportunistic, Required };
    Tls starttls = Tls::Off;  // STARTTLS towards the MTA (downstream.starttls)
  };
  // What the MTA holds on a connection greeted before this plan: the pool's.
  struct Held {
    Reply greeting;                   // a 2xx
    std::string hello;                // the HELO/EHLO said on it, "" for none
    std::optional<Reply> hello_reply;  // its 2xx reply
  };
  // What one input asks of the owner, in this order: relay `greeting`, write `send`, and then, if
  // `ready`, the connection is usable; `failed` (with `failed_reply` when the MTA refused a step)
  // ends it.
  struct Output {
    std::optional<Reply> greeting;
    std::string send;
    bool ready = false;
    std::optional<std::string> failed;
    std::optional<Reply> failed_reply;
    bool start_tls = false;  // the MTA said 220 to STARTTLS: wrap the connection, then tls_established()
  };
  enum class Step { Greeting, OwnHello, StartTls, TlsHandshake, Xclient, Hello, Ready, Failed };

  explicit Handshake(Plan plan) : plan_(std::move(plan)) {}

  // A fresh connection: nothing to do until its greeting arrives (feed it).
  // A greeted one: go on from what it holds.
  Output resume(Held held);
  Output feed(Reply reply);  // the next complete reply from the MTA
  // What the MTA holds once ready, moved out for the next owner (the pool hands it to a session).
  Held take_held();
  Output tls_established();  // after Output::start_tls: the TLS handshake with the MTA is done
  bool tls_on() const { return tls_on_; }

  Step step() const { return step_; }
  const Plan& plan() const { return plan_; }
  // The MTA's greeting (2xx or not), once seen.
  const std::optional<Reply>& greeting() const { return greeting_; }
  // The hello the MTA holds now and its reply: the plan's once ready, or one held from before.
  const std::string& hello() const { return hello_; }
  const std::optional<Reply>& hello_reply() const { return hello_reply_; }
  // Learnt from an EHLO's reply; empty for HELO or none.
  const EhloCapabilities& capabilities() const { return capabilities_; }
  // XCLIENT was sent and accepted: the MTA holds the real client's identity (such a connection
  // must carry no other client: a second XCLIENT would be judged as coming from the first client).
  bool identity_sent() const { return identity_sent_; }
  bool greeting_handed() const { return greeting_handed_; }  // plan.relay_greeting: it went out

 private:
  Output after_greeting(Output out);  // the identity step, then the hello
  Output after_identity(Output out);
  Output fail(Output out, std::string why, std::optional<Reply> reply = std::nullopt);
  Output ready(Output out);

  Plan plan_;
  Step step_ = Step::Greeting;
  std::optional<Reply> greeting_;
  std::string hello_;
  std::optional<Reply> hello_reply_;
  EhloCapabilities capabilities_;
  bool capabilities_known_ = false;  // from an EHLO on this connection (own, or the pool's)
  std::optional<Reply> client_greeting_;  // what a waiting client gets: the greeting, or XCLIENT's 220
  bool greeting_handed_ = false;
  std::vector<std::string> xclient_lines_;
  std::size_t xclient_next_ = 0;
  bool identity_done_ = false;
  bool tls_done_ = false;  // STARTTLS decided: on, or not to be had (opportunistic)
  bool tls_on_ = false;
  bool identity_sent_ = false;
};

}  // namespace dotgate::smtp
