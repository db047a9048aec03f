// lib/smtp/prdr.cc — see prdr.h.
#include "lib/smtp/prdr.h"

namespace dotgate::smtp {

PrdrReplies assemble_prdr(const std::vector<std::string>& recipients,
                          const std::vector<std::optional<Reply>>& refusals, const Reply& downstream,
                          const Reply& start) {
  PrdrReplies out;
  out.preface.push_back(start);
  bool delivered = downstream.klass() == 2;
  bool any_accepted = false, any_temporary = false;
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    Reply r;
    if (i < refusals.size() && refusals[i]) {
      r = *refusals[i];
    } else if (delivered) {
      r = Reply::make(250, "2.1.5", "<" + recipients[i] + "> Message accepted for delivery");
    } else {
      r = downstream;
    }
    any_accepted = any_accepted || r.klass() == 2;
    any_temporary = any_temporary || r.klass() == 4;
    out.preface.push_back(std::move(r));
  }
  if (any_accepted) {
    out.final_reply = downstream;
  } else if (any_temporary) {
    out.final_reply = Reply::make(451, "4.7.1", "No recipient accepted the message yet, try again later");
  } else {
    out.final_reply = Reply::make(550, "5.7.1", "No recipient accepted the message");
  }
  return out;
}

}  // namespace dotgate::smtp
