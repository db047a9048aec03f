// policies/limits.h — the `limits` policy: message size and recipient count as admin rules.
//
// The session enforces hard resource bounds itself (smtp.max_message_size stops buffering,
// smtp.max_recipients stops forwarding) whether or not this policy is configured; `limits` is
// where an admin sets the rule, possibly lower, and where profiles will set their own later.
//   mail:     MAIL FROM SIZE=n over max_message_size      -> 552 5.3.4 (RFC 1870 6.1)
//   rcpt:     more than max_recipients recipients          -> 452 4.5.3 (RFC 5321 4.5.3.1.10)
//   data_end: message larger than max_message_size         -> 552 5.3.4, dot never relayed
#pragma once

#include <memory>

#include "lib/config/config.h"
#include "policies/policy.h"

namespace dotgate::policy {

class PolicyConfigReader;

struct LimitsConfig {
  std::uint64_t max_message_size = 0;
  std::uint64_t max_recipients = 0;
};

class LimitsPolicy final : public Policy {
 public:
  explicit LimitsPolicy(LimitsConfig config) : config_(config) {}
  std::string_view name() const override { return "limits"; }
  void mail(const Envelope& envelope, Done done) override;
  void rcpt(const Envelope& envelope, const std::string& recipient, Done done) override;
  void data_end(const Envelope& envelope, SpoolRef spool, Done done) override;

 private:
  LimitsConfig config_;
};

std::unique_ptr<PolicyFactory> make_limits_factory(PolicyConfigReader& reader, const config::Config& config);

}  // namespace dotgate::policy
