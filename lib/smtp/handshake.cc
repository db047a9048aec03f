// lib/smtp/handshake.cc — see handshake.h.
#include "lib/smtp/handshake.h"

namespace dotgate::smtp {

namespace {
bool is_ehlo(const std::string& hello) { return hello.size() >= 4 && (hello.compare(0, 4, "EHLO") == 0); }
}  // namespace

Handshake::Output Handshake::resume(Held held) {
  Output out;
  greeting_ = std::move(held.greeting);
  if (!held.hello.empty()) {
    if (!plan_.xclient && !plan_.hello.empty() && plan_.hello != held.hello)
      return fail(std::move(out), "holds another hello: " + held.hello);
    hello_ = std::move(held.hello);
    hello_reply_ = std::move(held.hello_reply);
    if (hello_reply_ && is_ehlo(hello_)) {
      capabilities_ = parse_ehlo(*hello_reply_);
      capabilities_known_ = true;
    }
  }
  return after_greeting(std::move(out));
}

Handshake::Held Handshake::take_held() {
  Held held;
  if (greeting_) held.greeting = std::move(*greeting_);
  held.hello = std::move(hello_);
  held.hello_reply = std::move(hello_reply_);
  greeting_.reset();
  hello_.clear();
  hello_reply_.reset();
  return held;
}

Handshake::Output Handshake::feed(Reply reply) {
  Output out;
  switch (step_) {
    case Step::Greeting:
      greeting_ = std::move(reply);
      if (greeting_->klass() != 2) {
        if (plan_.relay_greeting) {
          // The client judges the greeting (421/554 end its session); nothing more to do here.
          out.greeting = greeting_;
          greeting_handed_ = true;
          return ready(std::move(out));
        }
        std::string why = "greeting " + std::to_string(greeting_->code);
        return fail(std::move(out), std::move(why), greeting_);
      }
      return after_greeting(std::move(out));
    case Step::OwnHello:
      hello_ = plan_.own_hello;
      if (reply.klass() == 2) {
        capabilities_ = parse_ehlo(reply);
        hello_reply_ = std::move(reply);
      } else {
        // An MTA that refuses dotgate's EHLO offers it nothing: no XCLIENT, go on without.
        hello_.clear();
      }
      capabilities_known_ = true;
      return after_greeting(std::move(out));
    case Step::StartTls:
      if (reply.code != 220) {
        if (plan_.starttls == Plan::Tls::Required) {
          std::string why = "STARTTLS refused: " + std::to_string(reply.code);
          return fail(std::move(out), std::move(why), std::move(reply));
        }
        tls_done_ = true;  // opportunistic: plain text, as before STARTTLS
        return after_greeting(std::move(out));
      }
      step_ = Step::TlsHandshake;
      out.start_tls = true;
      return out;
    case Step::Xclient:
      if (reply.klass() != 2) {
        // Postfix refuses XCLIENT with 501, 503 or 550. After an accepted one it greets the real
        // client afresh, and that greeting may be its refusal of that client (421 too many
        // connections from it; 554 from smtpd_client_restrictions with smtpd_delay_reject=no):
        // the client's to hear, as it would have heard it connecting to the MTA itself.
        bool greets_client = xclient_next_ == xclient_lines_.size() && (reply.code == 421 || reply.code == 554);
        if (!greets_client || !plan_.relay_greeting || greeting_handed_) {
          std::string why = "XCLIENT refused: " + std::to_string(reply.code);
          return fail(std::move(out), std::move(why), std::move(reply));
        }
        identity_done_ = true;
        identity_sent_ = true;
        out.greeting = std::move(reply);
        greeting_handed_ = true;
        return ready(std::move(out));
      }
      if (xclient_next_ < xclient_lines_.size()) {
        out.send = xclient_lines_[xclient_next_++] + "\r\n";
        return out;
      }
      // The MTA started over for the real client: no hello is held, this is its greeting.
      identity_done_ = true;
      identity_sent_ = true;
      hello_.clear();
      hello_reply_.reset();
      capabilities_ = {};
      client_greeting_ = std::move(reply);
      return after_identity(std::move(out));
    case Step::Hello:
      if (reply.klass() != 2) {
        std::string why = plan_.hello.substr(0, 4) + " refused: " + std::to_string(reply.code);
        return fail(std::move(out), std::move(why), std::move(reply));
      }
      hello_ = plan_.hello;
      capabilities_ = is_ehlo(hello_) ? parse_ehlo(reply) : EhloCapabilities{};
      hello_reply_ = std::move(reply);
      return ready(std::move(out));
    case Step::TlsHandshake:
    case Step::Ready:
    case Step::Failed:
      break;
  }
  return fail(std::move(out), "reply " + std::to_string(reply.code) + " after the handshake", std::move(reply));
}

Handshake::Output Handshake::tls_established() {
  Output out;
  if (step_ != Step::TlsHandshake) return fail(std::move(out), "TLS established out of turn");
  // RFC 3207 4.2: the MTA forgets what it knew; so does dotgate (its capabilities may differ now).
  tls_done_ = true;
  tls_on_ = true;
  hello_.clear();
  hello_reply_.reset();
  capabilities_ = {};
  capabilities_known_ = false;
  return after_greeting(std::move(out));
}

Handshake::Output Handshake::after_greeting(Output out) {
  bool want_tls = plan_.starttls != Plan::Tls::Off && !tls_done_;
  if ((want_tls || (plan_.xclient && !identity_done_)) && !capabilities_known_) {
    step_ = Step::OwnHello;
    out.send = plan_.own_hello + "\r\n";
    return out;
  }
  if (want_tls) {
    if (capabilities_.starttls) {
      step_ = Step::StartTls;
      out.send = "STARTTLS\r\n";
      return out;
    }
    if (plan_.starttls == Plan::Tls::Required) return fail(std::move(out), "STARTTLS not offered");
    tls_done_ = true;
  }
  if (plan_.xclient && !identity_done_) {
    if (capabilities_.xclient) {
      xclient_lines_ = build_xclient(*plan_.xclient, capabilities_.xclient_attributes);
      if (!xclient_lines_.empty()) {
        step_ = Step::Xclient;
        out.send = xclient_lines_[0] + "\r\n";
        xclient_next_ = 1;
        return out;
      }
    }
    identity_done_ = true;  // not announced (or nothing it takes): the MTA sees dotgate
  }
  return after_identity(std::move(out));
}

Handshake::Output Handshake::after_identity(Output out) {
  if (plan_.relay_greeting && !greeting_handed_) {
    // The greeting itself stays (a pooled connection's next client gets it): a copy goes out,
    // unless XCLIENT's 220 replaced it.
    if (client_greeting_) {
      out.greeting = std::move(client_greeting_);
      client_greeting_.reset();
    } else {
      out.greeting = greeting_;
    }
    greeting_handed_ = true;
  }
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
