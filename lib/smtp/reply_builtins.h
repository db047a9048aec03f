// lib/smtp/reply_builtins.h — the built-in reply rewrites, each a pure edit of one Reply.
//
// Called by ReplyRules::apply (lib/smtp/reply_rules.cc) in this order, around the configured rules:
//   1. normalise_greeting_code — always (invariant 4, seed 002): a greeting is 220, 421 or 554;
//   2. the configured rules;
//   3. hide_greeting_banner / hide_ehlo_name — rewrite.hide_banner: the client learns dotgate's
//      name, not the MTA's host name and software;
//   4. soft_bounce — while the maintenance flag is on, a 5xx to RCPT becomes 4xx (Postfix's
//      soft_bounce does the same to the first digit, for the same reason: nothing bounces while
//      an admin fixes a mistake);
//   5. add_enhanced_codes — rewrite.enhanced_codes: dotgate announces ENHANCEDSTATUSCODES, so every
//      2xx/4xx/5xx line after EHLO carries one (RFC 2034 4).
// Each returns true when it changed the reply (that is what dotgate_reply_rewrites_total counts).
#pragma once

#include <string_view>

#include "lib/smtp/reply.h"

namespace dotgate::smtp {

// 2xx -> 220, 4xx -> 421, 5xx -> 554, anything else -> 421; text kept (RFC 5321 4.3.2, 3.1).
bool normalise_greeting_code(Reply& reply);

// A 220 greeting becomes "220 <hostname> ESMTP", one line (multi-line banners are where host
// names, software and versions live). A 421/554 greeting keeps its reason (the sender needs it),
// with its first word replaced by <hostname> when that word is a domain or address literal, as
// RFC 5321 4.3.1 puts it there.
bool hide_greeting_banner(Reply& reply, std::string_view hostname);

// The first line of a positive EHLO/HELO reply (the MTA's name, and for some MTAs a "Hello
// client [address]") becomes <hostname>; the keywords that follow are untouched.
bool hide_ehlo_name(Reply& reply, std::string_view hostname);

// 5yz -> 4yz (521 -> 450: 421 would say the server is closing), and every line's enhanced code
// 5.s.d -> 4.s.d. No-op on anything but 5xx.
bool soft_bounce(Reply& reply);

// Lines of a 2xx/4xx/5xx reply without an enhanced code (of the reply's class) get the first
// line's, or X.0.0 when the first has none either. No-op on 3xx. Not for greetings and EHLO/HELO
// replies (RFC 2034: the client cannot know yet that codes are coming).
bool add_enhanced_codes(Reply& reply);

}  // namespace dotgate::smtp
