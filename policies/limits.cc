// policies/limits.cc — see limits.h.
#include "policies/limits.h"

#include <charconv>

#include "policies/registry.h"

namespace dotgate::policy {

namespace {
class LimitsFactory final : public PolicyFactory {
 public:
  explicit LimitsFactory(LimitsConfig config) : config_(config) {}
  std::unique_ptr<Policy> create(const PolicyContext&) const override { return std::make_unique<LimitsPolicy>(config_); }

 private:
  LimitsConfig config_;
};
}  // namespace

void LimitsPolicy::mail(const Envelope& envelope, Done done) {
  for (const auto& p : envelope.mail_params) {
    if (p.keyword != "SIZE" || !p.has_value) continue;
    std::uint64_t declared = 0;
    auto [ptr, ec] = std::from_chars(p.value.data(), p.value.data() + p.value.size(), declared);
    bool overflow = ec == std::errc::result_out_of_range;
    if ((ec == std::errc() && ptr == p.value.data() + p.value.size() && declared > config_.max_message_size) || overflow) {
      return done(Verdict::fail(552, "5.3.4", "Message size exceeds fixed limit", "declared SIZE over limit"));
    }
  }
  done(Verdict::pass());
}

void LimitsPolicy::rcpt(const Envelope& envelope, const std::string&, Done done) {
  if (envelope.recipients.size() >= config_.max_recipients)
    return done(Verdict::fail(452, "4.5.3", "Too many recipients", "recipient limit"));
  done(Verdict::pass());
}

void LimitsPolicy::data_end(const Envelope& envelope, SpoolRef, Done done) {
  if (envelope.message_size > config_.max_message_size)
    return done(Verdict::fail(552, "5.3.4", "Message size exceeds fixed limit", "message over size limit"));
  done(Verdict::pass());
}

std::unique_ptr<PolicyFactory> make_limits_factory(PolicyConfigReader& reader, const config::Config& config) {
  LimitsConfig c;
  c.max_message_size = reader.unsigned_integer("max_message_size", config.smtp.max_message_size, 1,
                                               UINT64_MAX);
  c.max_recipients = reader.unsigned_integer("max_recipients", config.smtp.max_recipients, 1, 1'000'000);
  return std::make_unique<LimitsFactory>(c);
}

}  // namespace dotgate::policy
