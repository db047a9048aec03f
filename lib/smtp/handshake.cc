// lib/smtp/handshake.cc — see handshake.h.
#include "lib/smtp/handshake.h"

namespace dotgate::smtp {

namespace {
bool is_ehlo(const std::string& hello) { return hello.size() >= 4 && (hello.compare(0, 4, "EHLO") == 0); }
}  // namespace

Handshake::Output Handshake::resume(Held held) {
  Output out;
  greeting_ = std::move(held.greeting);
  if (plan_.relay_greeting) out.greeting = *greeting_;
  if (!held.hello.empty()) {
    if (!plan_.hello.empty() && plan_.hello != held.hello)
      return fail(std::move(out), "holds another hello: " + held.hello);
    hello_ = std::move(held.hello);
    hello_reply_ = std::move(held.hello_reply);
    if (hello_reply_ && is_ehlo(hello_)) capabilities_ = parse_ehlo(*hello_reply_);
    if (!plan_.hello.empty()) return ready(std::move(out));  // the very hello the plan wants
  }
  return after_greeting(std::move(out));
}

Handshake::Output Handshake::feed(Reply reply) {
  Output out;
  switch (step_) {
    case Step::Greeting:
      greeting_ = reply;
      if (plan_.relay_greeting) {
        // The client judges the greeting (421/554 end its session); nothing more to do here.
        out.greeting = std::move(reply);
        if (out.greeting->klass() != 2) {
          step_ = Step::Ready;
          out.ready = true;
          return out;
        }
        return after_greeting(std::move(out));
      }
      if (reply.klass() != 2) {
        std::string why = "greeting " + std::to_string(reply.code);
        return fail(std::move(out), std::move(why), std::move(reply));
      }
      return after_greeting(std::move(out));
    case Step::Hello:
      if (reply.klass() != 2) {
        std::string why = plan_.hello.substr(0, 4) + " refused: " + std::to_string(reply.code);
        return fail(std::move(out), std::move(why), std::move(reply));
      }
      hello_ = plan_.hello;
      capabilities_ = is_ehlo(hello_) ? parse_ehlo(reply) : EhloCapabilities{};
      hello_reply_ = std::move(reply);
      return ready(std::move(out));
    case Step::Ready:
    case Step::Failed:
      break;
  }
  return fail(std::move(out), "reply " + std::to_string(reply.code) + " after the handshake", std::move(reply));
}

Handshake::Output Handshake::after_greeting(Output out) {
  // (issue 17: XCLIENT / XFORWARD / STARTTLS step, before the hello)
  if (plan_.hello.empty() || plan_.hello == hello_) return ready(std::move(out));
  step_ = Step::Hello;
  out.send = plan_.hello + "\r\n";
  return out;
}

Handshake::Output Handshake::ready(Output out) {
  step_ = Step::Ready;
  out.ready = true;
  return out;
}

Handshake::Output Handshake::fail(Output out, std::string why, std::optional<Reply> reply) {
  step_ = Step::Failed;
  out.failed = std::move(why);
  out.failed_reply = std::move(reply);
  return out;
}

}  // namespace dotgate::smtp
