// proxy/reply_rewriter.cc — see reply_rewriter.h.
#include "proxy/reply_rewriter.h"

#include "lib/log/log.h"

namespace dotgate::proxy {

ReplyRewriter::ReplyRewriter(std::shared_ptr<const smtp::ReplyRules> rules, const std::atomic<bool>* maintenance)
    : rules_(rules ? std::move(rules) : smtp::ReplyRules::defaults()), maintenance_(maintenance) {
  for (std::size_t i = 0; i < rules_->size(); ++i) rule_counters_.push_back(&metrics::rewrite_counter(rules_->rule_name(i)));
  for (std::size_t b = 0; b < smtp::kBuiltinCount; ++b)
    builtin_counters_[b] = &metrics::rewrite_counter(std::string(smtp::kBuiltinNames[b]));
}

smtp::Reply ReplyRewriter::rewrite(smtp::Stage stage, smtp::Reply reply) const {
  bool maintenance = stage == smtp::Stage::Rcpt && maintenance_ && maintenance_->load(std::memory_order_relaxed);
  bool trace = log::enabled(spdlog::level::debug);
  std::string before = trace ? reply.serialize() : std::string();
  smtp::RewriteResult result = rules_->apply(stage, std::move(reply), maintenance);
  if (result.rule >= 0) rule_counters_[static_cast<std::size_t>(result.rule)]->add();
  for (std::size_t b = 0; b < smtp::kBuiltinCount; ++b)
    if (result.builtins & (1u << b)) builtin_counters_[b]->add();
  if (trace && result.rule >= 0) {
    // The admin writing a rule wants to see what it did; the built-ins fire too often to log.
    log::debug("reply rewritten", {{"rule", rules_->rule_name(static_cast<std::size_t>(result.rule))},
                                   {"stage", smtp::stage_name(stage)},
                                   {"from", before},
                                   {"to", result.reply.serialize()}});
  }
  return std::move(result.reply);
}

smtp::Reply ReplyRewriter::rewrite_ehlo(const smtp::Reply& downstream, smtp::EhloOffer offer) const {
  offer.enhanced_status_codes = rules_->options().enhanced_codes || smtp::parse_ehlo(downstream).enhancedstatuscodes;
  return rewrite(smtp::Stage::Ehlo, smtp::rewrite_ehlo(downstream, offer));
}

}  // namespace dotgate::proxy
