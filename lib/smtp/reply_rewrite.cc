// lib/smtp/reply_rewrite.cc — normalising each downstream reply before it reaches the client.
//
// Called by the Session for every downstream reply (after reply_allowed(); a reply that is not
// allowed means a broken or desynchronised downstream, which the Session closes). Pure; owns
// nothing. Why: the client must only ever see valid RFC 5321 replies (invariant 4), and dotgate
// announces ENHANCEDSTATUSCODES, so every 2xx/4xx/5xx line must carry one (RFC 2034 4).
#include "lib/smtp/reply_rewrite.h"

#include <optional>

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
    // RFC 5321 4.3.2: a greeting is 220, or 554 (or 421 when closing); anything else from the
    // downstream becomes the closest of those, text kept (seed 002).
    switch (reply.klass()) {
      case 2: reply.code = 220; break;
      case 5: reply.code = 554; break;
      default: reply.code = 421; break;
    }
    return reply;
  }
  if (context == ReplyContext::Ehlo || context == ReplyContext::Helo) return reply;
  int klass = reply.klass();
  if (klass != 2 && klass != 4 && klass != 5) return reply;  // 354: no enhanced code exists

  if (reply.lines.empty()) reply.lines.emplace_back();
  // RFC 2034 4: the enhanced code is on every line. Lines without one take the first line's,
  // or X.0.0 (class only, nothing more specific is known) when the first line has none either.
  std::string code = has_enhanced_code(reply.code, reply.lines.front())
                         ? *reply.enhanced()
                         : std::to_string(klass) + ".0.0";
  for (auto& line : reply.lines) {
    if (has_enhanced_code(reply.code, line)) continue;
    line = line.empty() ? code : code + " " + line;
  }
  return reply;
}

}  // namespace dotgate::smtp
