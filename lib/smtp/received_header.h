// lib/smtp/received_header.h — the Received trace field dotgate writes at the top of a message it
// relays (config smtp.trace_header): RFC 5321 4.4, with the protocol keywords of RFC 3848 and the
// TLS facts in Postfix's wording plus RFC 8314 4.3's "tls" clause, so that the MTA, rspamd and
// SpamAssassin behind dotgate read the hop the way they read a Postfix one:
//
//   Received: from client.example ([192.0.2.1])
//   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
//   	by mx.example.net (dotgate) with ESMTPS id 3F2A9C01B7
//   	tls TLS_AES_256_GCM_SHA384;
//   	Fri, 04 Dec 2026 21:14:47 +0000
//
// Pure: facts in, the field's wire form out (CRLF after every line, continuation lines start with
// a TAB). Who calls it: the session, once per transaction at the downstream's 354, before the
// client's first body byte; the unit tests. Nothing is owned past a call.
// What it guarantees whatever the client said (the HELO argument is the client's text):
//   - only printable US-ASCII, lines folded at whitespace to at most 78 characters where the
//     words allow and never more than 998 (RFC 5322 2.1.1): the HELO name is cut to 255
//     characters, every other word is dotgate's own and short;
//   - no line starts with '.' (dot-stuffing has nothing to do) or is empty (the header section
//     goes on after it), and no byte can end a comment or the clause early: '(', ')', '\\', ';'
//     and anything outside '!'..'~' in the HELO name become '?'.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dotgate::smtp {

struct ReceivedFacts {
  std::string helo;       // the client's HELO/EHLO argument as it sent it; "" if none
  std::string client_ip;  // "192.0.2.1" or "2001:db8::1" (no brackets); "" if not known
  std::string by;         // dotgate's own name (smtp.hostname)
  bool esmtp = true;      // the client said EHLO (false: HELO)
  bool authenticated = false;  // the MTA accepted the client's AUTH (smtp.auth_passthrough)
  std::string queue_id;   // dotgate's id of the transaction, as in its log line; "" for none
  // TLS with the client; tls_version "" for a session in plain text.
  std::string tls_version;      // "TLSv1.3" (OpenSSL's name)
  std::string tls_cipher;       // "TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES128-GCM-SHA256" (OpenSSL's)
  std::string tls_cipher_iana;  // the IANA registry's name, for the "tls" clause; "" to leave it out
  int tls_bits = 0;             // the secret bits used
  int tls_alg_bits = 0;         // the cipher's own bits
  std::int64_t unix_time = 0;   // when the message arrived, seconds since the epoch
};

// RFC 3848 / RFC 5321: "SMTP" after HELO (RFC 3848 is defined for ESMTP only, as Postfix says),
// else "ESMTP", "ESMTPS" (TLS), "ESMTPA" (AUTH), "ESMTPSA" (both).
std::string received_protocol(bool esmtp, bool tls, bool authenticated);

// RFC 5322 3.3 date-time in UTC: "Fri, 04 Dec 2026 21:14:47 +0000".
std::string rfc5322_date(std::int64_t unix_time);

// The whole field, "Received: ..." to its last CRLF.
std::string received_header(const ReceivedFacts& facts);

}  // namespace dotgate::smtp
