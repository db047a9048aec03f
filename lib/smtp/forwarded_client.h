// lib/smtp/forwarded_client.h — what a trusted client told dotgate with XFORWARD: the server side
// of Postfix's XFORWARD_README, as a pure state (commands in, replies and attributes out).
//
// dotgate as a Postfix smtpd_proxy_filter: the Postfix in front announces the real client with
// XFORWARD (its smtpd_proxy sends it after EHLO, before MAIL, when dotgate announces it). The
// session asks this object for the reply to each XFORWARD of a client it trusts (smtp.xforward_from;
// an untrusted client never reaches it: its XFORWARD is refused like any command not offered), and
// uses the attributes as the client's identity for the transaction: the policies' Envelope, the
// log line, and what goes on downstream (XFORWARD, or XCLIENT with downstream.xclient).
//
// The README's rules, as Postfix's smtpd applies them:
//   - XFORWARD inside a transaction (between MAIL and its end) is refused, 503 5.5.1;
//   - the first accepted XFORWARD sets every attribute to [UNAVAILABLE], then its own values: the
//     forwarded identity is never mixed with the connection's (an ADDR without a NAME is a client
//     of unknown name, not the Postfix in front's name);
//   - later ones update what they name; a refused one (501) changes nothing;
//   - at the end of each transaction (its dot's reply, RSET) and at HELO/EHLO the attributes are
//     forgotten (reset()): the next transaction starts from the connection's own identity.
// Owns its attributes; nothing else. Every call completes at once.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "lib/smtp/reply.h"
#include "lib/smtp/xclient.h"

namespace dotgate::smtp {

// The keyword line dotgate's EHLO reply carries for a trusted client: every attribute it reads.
inline constexpr std::string_view kXforwardOffer = "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE";

class ForwardedClient {
 public:
  // The reply to "XFORWARD <arguments>" from a client allowed to send it: 250 2.0.0 Ok, 503
  // inside a transaction, 501 for bad syntax (parse_xforward words it).
  Reply command(std::string_view arguments, bool in_transaction);
  // The transaction ended (dot answered, RSET) or a new HELO/EHLO: back to the connection's identity.
  void reset() { attributes_.reset(); }

  bool active() const { return attributes_.has_value(); }
  // Every attribute set (values or [UNAVAILABLE]) while active().
  const std::optional<ClientIdentity>& attributes() const { return attributes_; }

  // The forwarded client as dotgate's Envelope names a client ("192.0.2.1:4711",
  // "[2001:db8::1]:4711"; "192.0.2.1", "[2001:db8::1]" when PORT is unavailable); "" when ADDR is
  // unavailable, or nothing was forwarded.
  std::string client_address() const;
  // The forwarded HELO name; "" when unavailable or nothing was forwarded.
  std::string helo() const;

 private:
  std::optional<ClientIdentity> attributes_;
};

// True for a value that names nothing: [UNAVAILABLE] or [TEMPUNAVAIL] (what parse_xforward stores).
bool unavailable(const std::optional<std::string>& value);

}  // namespace dotgate::smtp
