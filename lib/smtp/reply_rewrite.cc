// lib/smtp/reply_rewrite.cc — normalising each downstream reply before it reaches the client.
//
// reply_allowed() is called by the Session for every downstream reply (a reply that is not allowed
// means a broken or desynchronised downstream, which the Session closes) and by the reply rules
// (lib/smtp/reply_rules.cc), which do the rewriting itself. Pure; owns nothing. Why: the client
// must only ever see valid RFC 5321 replies (invariant 4), and dotgate announces
// ENHANCEDSTATUSCODES, so every 2xx/4xx/5xx line must carry one (RFC 2034 4).
#include "lib/smtp/reply_rewrite.h"

#include "lib/smtp/reply_builtins.h"

namespace dotgate::smtp {

ReplyContext context_for(Verb verb) {
  switch (verb) {
    case Verb::Ehlo: return ReplyContext::Ehlo;
    case Verb::Helo: return ReplyContext::Helo;
    case Verb::Data: return ReplyContext::Data;
    default: return ReplyContext::Other;
  }
}

bool reply_allowed(ReplyContext context, const Reply& reply) {
  if (context == ReplyContext::Greeting) return true;  // always normalised to 220/421/554
  if (!valid_reply_code(reply.code)) return false;
  int klass = reply.klass();
  switch (context) {
    case ReplyContext::Data:
      // 354 or a refusal; 250 to DATA would mean the downstream took an empty message.
      return reply.code == 354 || klass == 4 || klass == 5;
    case ReplyContext::Ehlo:
    case ReplyContext::Helo:
    case ReplyContext::DataEnd:
    case ReplyContext::Other:
    default:
      // No 3xx: 354 to MAIL or 3xx to the dot is a downstream out of step with us.
      return klass == 2 || klass == 4 || klass == 5;
  }
}

Reply rewrite_reply(ReplyContext context, Reply reply) {
  if (context == ReplyContext::Greeting) {
    normalise_greeting_code(reply);
    return reply;
  }
  if (context == ReplyContext::Ehlo || context == ReplyContext::Helo) return reply;
  add_enhanced_codes(reply);
  return reply;
}

}  // namespace dotgate::smtp
