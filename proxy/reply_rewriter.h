// proxy/reply_rewriter.h — the reply rewriting step as the Session calls it: the Runtime's
// compiled rules (lib/smtp/reply_rules.h), the process's maintenance flag, and the counters.
//
// One per Runtime (built with it at start and on SIGHUP, immutable after), shared by every
// session and worker thread that runs under that Runtime: rewrite() reads the flag (a relaxed
// atomic in proxy::Shared, which outlives every Runtime) and adds to the rules' counters
// (lib/metrics/rewrite_metrics.h); nothing else changes. Every downstream reply the client sees
// passes one of its two calls (proxy/session_downstream.cc).
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <vector>

#include "lib/metrics/rewrite_metrics.h"
#include "lib/smtp/ehlo.h"
#include "lib/smtp/reply.h"
#include "lib/smtp/reply_rules.h"

namespace dotgate::proxy {

class ReplyRewriter {
 public:
  // The built-ins alone, no maintenance flag (a Runtime made in a test).
  ReplyRewriter() : ReplyRewriter(nullptr, nullptr) {}
  // `rules` null: smtp::ReplyRules::defaults(). `maintenance` null: never on.
  ReplyRewriter(std::shared_ptr<const smtp::ReplyRules> rules, const std::atomic<bool>* maintenance);

  // A downstream reply at `stage` (reply_allowed() already checked), as the client gets it.
  smtp::Reply rewrite(smtp::Stage stage, smtp::Reply reply) const;
  // A positive EHLO reply: the extensions dotgate can relay (smtp::rewrite_ehlo), then the rules
  // at stage ehlo. With the enhanced_codes built-in off, ENHANCEDSTATUSCODES is offered only when
  // the MTA offers it (the MTA's replies would otherwise break the promise).
  smtp::Reply rewrite_ehlo(const smtp::Reply& downstream, smtp::EhloOffer offer) const;

  const smtp::ReplyRules& rules() const { return *rules_; }

 private:
  std::shared_ptr<const smtp::ReplyRules> rules_;
  const std::atomic<bool>* maintenance_;
  std::vector<metrics::RewriteCounter*> rule_counters_;  // by rule index
  std::array<metrics::RewriteCounter*, smtp::kBuiltinCount> builtin_counters_{};
};

}  // namespace dotgate::proxy
