// lib/smtp/prdr.h — the replies after the dot of a PRDR transaction (draft-hall-prdr-00), pure.
//
// Given, for each recipient the MTA accepted at RCPT (in RCPT order), either its profile's
// refusal or nothing (its profile accepted the message), and what became of the message at the
// MTA for those accepted (the MTA's reply to the dot, or dotgate's 4xx when the hand-over
// failed): the 353, one reply per recipient, and the final reply. A per-recipient 250 only when
// the MTA said 250; the final reply is the MTA's 250 if any recipient got one, else 451 when any
// got a 4xx, else 550.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "lib/smtp/reply.h"

namespace dotgate::smtp {

struct PrdrReplies {
  std::vector<Reply> preface;  // 353, then one per recipient
  Reply final_reply;
};

PrdrReplies assemble_prdr(const std::vector<std::string>& recipients,
                          const std::vector<std::optional<Reply>>& refusals, const Reply& downstream,
                          const Reply& start);

}  // namespace dotgate::smtp
