// lib/smtp/handshake.h — the one way a downstream connection becomes ready: the SMTP client's
// opening, as a pure state machine (replies in, what to send and what happened out).
//
// Every downstream connection goes through it, whatever opened it: a session's fresh connection
// for its client's greeting, the pool's pre-greeted ones, the reconnection after an aborted
// transaction (the client's HELO/EHLO replayed), the replay of an edited message, the fresh
// connection that replaces a pooled one found dead. Steps, in order:
//   1. greeting  — relayed to a client that waits for it (whatever its code: the session
//                  normalises it), else it must be a 2xx;
//   2. (the step for XCLIENT / XFORWARD / STARTTLS goes here: it needs the greeting and, for the
//      capabilities, an EHLO of its own; it ends with the MTA greeted again)
//   3. hello     — the HELO/EHLO the plan names (the client's, replayed; the pool's EHLO said
//                  ahead of a client), which must be answered 2xx; its capabilities are learnt;
//   4. ready.
// A connection someone else greeted (the pool) is resumed with what it holds: its greeting and
// the hello said on it. Resuming with a plan whose hello is another than the one held fails (the
// MTA holds a state the client did not cause).
// Protocol checks that are not the handshake's (a reply with bytes after it, a broken line) stay
// with the owner of the socket; the machine sees one complete reply at a time.
#pragma once

#include <optional>
#include <string>

#include "lib/smtp/ehlo.h"
#include "lib/smtp/reply.h"

namespace dotgate::smtp {

class Handshake {
 public:
  struct Plan {
    bool relay_greeting = false;  // the client waits for this greeting: hand it over as it is
    std::string hello;            // "EHLO name" / "HELO name" (no CRLF) to say once greeted; "" none
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
  };
  enum class Step { Greeting, Hello, Ready, Failed };

  explicit Handshake(Plan plan) : plan_(std::move(plan)) {}

  // A fresh connection: nothing to do until its greeting arrives (feed it).
  // A greeted one: go on from what it holds.
  Output resume(Held held);
  Output feed(Reply reply);  // the next complete reply from the MTA

  Step step() const { return step_; }
  const Plan& plan() const { return plan_; }
  // The MTA's greeting (2xx or not), once seen.
  const std::optional<Reply>& greeting() const { return greeting_; }
  // The hello the MTA holds now and its reply: the plan's once ready, or one held from before.
  const std::string& hello() const { return hello_; }
  const std::optional<Reply>& hello_reply() const { return hello_reply_; }
  // Learnt from an EHLO's reply; empty for HELO or none.
  const EhloCapabilities& capabilities() const { return capabilities_; }

 private:
  Output after_greeting(Output out);
  Output fail(Output out, std::string why, std::optional<Reply> reply = std::nullopt);
  Output ready(Output out);

  Plan plan_;
  Step step_ = Step::Greeting;
  std::optional<Reply> greeting_;
  std::string hello_;
  std::optional<Reply> hello_reply_;
  EhloCapabilities capabilities_;
};

}  // namespace dotgate::smtp
