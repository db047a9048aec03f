// lib/smtp/ehlo.h — EHLO capability lists: what the downstream offers, what dotgate offers the client.
//
// dotgate can only relay extensions it understands end to end, so the client sees a filtered list:
// PIPELINING (always: dotgate serialises downstream when the MTA lacks it), SIZE, 8BITMIME,
// SMTPUTF8, ENHANCEDSTATUSCODES (always: dotgate's own replies carry enhanced codes), DSN; AUTH only
// when configured; PRDR when configured. CHUNKING/BINARYMIME (BDAT bypasses the dot we hold),
// STARTTLS (until dotgate terminates TLS), XCLIENT/XFORWARD (they would let a client forge its
// identity to the MTA) and unknown keywords are dropped; dotgate announces its own XFORWARD to a
// client it trusts with it (EhloOffer::xforward).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lib/smtp/reply.h"

namespace dotgate::smtp {

struct EhloCapabilities {
  bool pipelining = false;
  bool size = false;
  std::uint64_t size_limit = 0;  // 0: SIZE without a number, or no limit announced
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool enhancedstatuscodes = false;
  bool dsn = false;
  bool starttls = false;
  bool chunking = false;
  bool prdr = false;
  bool xclient = false;
  bool xforward = false;
  // The attribute names after the keyword ("XCLIENT NAME ADDR PROTO HELO"), upper-cased, in the
  // MTA's order: what lib/smtp/xclient.h may send it.
  std::vector<std::string> xclient_attributes;
  std::vector<std::string> xforward_attributes;
  std::vector<std::string> auth_mechanisms;  // from "AUTH PLAIN LOGIN" (and "AUTH=..." lines)
};

// Reads the keywords of a positive EHLO reply (first line is the server's name, not a keyword).
EhloCapabilities parse_ehlo(const Reply& reply);

struct EhloOffer {
  std::uint64_t max_message_size = 0;  // dotgate's own limit; 0: none. SIZE offered = min with downstream's
  bool auth_passthrough = false;       // keep the downstream's AUTH line
  bool prdr = false;                   // announce PRDR (issue: per-recipient data responses)
  // Announce ENHANCEDSTATUSCODES (dotgate's own replies always carry codes; the MTA's get them
  // from the enhanced_codes built-in, unless it is switched off: then only if the MTA offers it).
  bool enhanced_status_codes = true;
  bool starttls = false;  // dotgate terminates TLS on this listener, and it is not on yet (RFC 3207)
  // Announce XFORWARD (forwarded_client.h: kXforwardOffer) to a client in smtp.xforward_from:
  // dotgate's own, never the MTA's line (the MTA's XFORWARD is dotgate's to use).
  bool xforward = false;
};

// Builds the reply the client sees from the downstream's positive EHLO reply. The first line
// (the server greeting name) is kept as is.
Reply rewrite_ehlo(const Reply& downstream, const EhloOffer& offer);

}  // namespace dotgate::smtp
