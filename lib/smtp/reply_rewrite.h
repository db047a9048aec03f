// lib/smtp/reply_rewrite.h — which downstream replies are possible at all, and the normalisation
// every downstream reply gets on its way to the client (the configurable rules around it are
// lib/smtp/reply_rules.h).
//
// Rules (Postfix smtpd_proxy's principle: an unexpected reply from the proxied side is never
// passed on; a safe one replaces it):
//   - greetings by first digit: 2xx -> 220, 4xx -> 421, 5xx -> 554, anything else -> 421 (seed 002);
//   - every line carries one code (Reply::serialize guarantees it);
//   - a 2xx/4xx/5xx reply (other than greeting, EHLO/HELO) without an enhanced status code gets one
//     derived from its class (X.0.0), because dotgate always announces ENHANCEDSTATUSCODES;
//   - a reply whose class the command cannot have (354 to MAIL, 250 to DATA, 3xx to the dot) is a
//     desynchronised or broken downstream: the caller closes it and answers 421 4.4.2 (invalid()).
#pragma once

#include <string>

#include "lib/smtp/command.h"
#include "lib/smtp/reply.h"

namespace dotgate::smtp {

enum class ReplyContext { Greeting, Ehlo, Helo, Data, DataEnd, Other };

ReplyContext context_for(Verb verb);  // Ehlo, Helo, Data; everything else Other

// False when the reply's class is impossible for the context (the downstream is broken).
bool reply_allowed(ReplyContext context, const Reply& reply);

// Normalises a downstream reply for the client: the built-ins greeting_code and enhanced_codes
// alone (lib/smtp/reply_builtins.h), what dotgate did before the rewrite rules. The Session now
// goes through smtp::ReplyRules (proxy/reply_rewriter.h), which adds the configured rules and the
// other built-ins; this stays as the reference the fuzzer checks invariant 4 against.
// Precondition: reply_allowed() (except for Greeting, which always normalises).
Reply rewrite_reply(ReplyContext context, Reply reply);

}  // namespace dotgate::smtp
