// policies/rspamd.cc — see rspamd.h. Why on_error defaults to tempfail: as for the `http` policy,
// an rspamd that is down must not let everything through unchecked (fail-open is the admin's
// choice, "on_error": "accept"); a 451 keeps the message with the sender, who retries.
#include "policies/rspamd.h"

#include <chrono>

#include "lib/log/log.h"
#include "lib/smtp/data_stream.h"
#include "lib/spool/spool.h"
#include "policies/client_registry.h"
#include "policies/registry.h"
#include "policies/rspamd_request.h"

namespace dotgate::policy {

namespace {

class RspamdFactory final : public PolicyFactory {
 public:
  explicit RspamdFactory(std::shared_ptr<const RspamdPolicyConfig> config)
      : config_(config), registry_(std::make_shared<ClientRegistry>(config->url, config->max_connections)) {}
  std::unique_ptr<Policy> create(const PolicyContext& context) const override {
    return std::make_unique<RspamdPolicy>(config_, registry_, context.loop);
  }

 private:
  std::shared_ptr<const RspamdPolicyConfig> config_;
  std::shared_ptr<ClientRegistry> registry_;
};

// Scores are rspamd's (negative ones included: a whitelisted sender scores below zero).
constexpr double kScoreLimit = 100000;

RspamdThresholds read_thresholds(PolicyConfigReader& reader) {
  RspamdThresholds t;
  auto one = [&](const char* key, std::optional<double>& out) {
    double v = reader.number(key, 0, -kScoreLimit, kScoreLimit);
    if (reader.has(key)) out = v;
  };
  one("reject_score", t.reject);
  one("tempfail_score", t.tempfail);
  one("add_header_score", t.add_header);
  return t;
}

}  // namespace

const RspamdThresholds& RspamdPolicyConfig::thresholds_for(const std::string& profile) const {
  if (!profile.empty()) {
    auto it = profiles.find(profile);
    if (it != profiles.end()) return it->second;
  }
  return thresholds;
}

RspamdPolicy::RspamdPolicy(std::shared_ptr<const RspamdPolicyConfig> config, std::shared_ptr<ClientRegistry> registry,
                           uv_loop_t* loop)
    : config_(std::move(config)), registry_(std::move(registry)), loop_(loop) {}

RspamdPolicy::~RspamdPolicy() {
  cancel();
  if (client_ != nullptr) registry_->release(loop_);
}

void RspamdPolicy::cancel() {
  if (request_ != 0 && client_ != nullptr) client_->cancel(request_);
  request_ = 0;
}

void RspamdPolicy::data_end(const Envelope& envelope, SpoolRef spool, Done done) {
  if (loop_ == nullptr) return done(rspamd_on_error(config_->on_error, "connect", "no event loop"));
  // Taken on first use, kept until the session ends (as the `http` policy does).
  if (client_ == nullptr) client_ = registry_->acquire(loop_);
  cancel();
  http::Client::Headers headers = rspamd_request_headers(envelope);
  // The thresholds are chosen now: the profile is the transaction's, fixed before DATA.
  RspamdThresholds thresholds = config_->thresholds_for(envelope.profile);
  auto started = std::chrono::steady_clock::now();
  std::string client_address = envelope.client_address;
  std::string queue_id = envelope.queue_id;
  request_ = client_->post(headers, smtp::unstuff(spool->read_all()), config_->timeout_ms,
                           [this, done = std::move(done), thresholds, started, client_address,
                            queue_id](http::ClientResult result) {
    request_ = 0;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    Verdict verdict;
    if (!result.ok()) {
      verdict = rspamd_on_error(config_->on_error, rspamd_error_label(result.error), result.error);
    } else {
      RspamdAnswer answer = rspamd_verdict(result.status, result.body, thresholds);
      verdict = answer.ok ? std::move(answer.verdict) : rspamd_on_error(config_->on_error, answer.error, answer.detail);
    }
    if (!verdict.error.empty()) {
      log::warn("rspamd policy: no usable answer", {{"client", client_address}, {"id", queue_id},
                                                    {"url", config_->url_text}, {"error", verdict.error},
                                                    {"reason", verdict.reason}, {"ms", ms}});
    }
    done(std::move(verdict));
  });
}

std::shared_ptr<const RspamdPolicyConfig> read_rspamd_config(PolicyConfigReader& reader) {
  auto c = std::make_shared<RspamdPolicyConfig>();
  c->url_text = reader.string("url", c->url_text);
  std::string why = http::parse_url(c->url_text, c->url);
  if (!why.empty()) throw config::ConfigError(reader.path() + ".url: " + why);
  c->timeout_ms = static_cast<std::uint64_t>(reader.number("timeout", 20, 0.001, 3600) * 1000.0);
  if (c->timeout_ms == 0) c->timeout_ms = 1;
  std::string on_error = reader.choice("on_error", "tempfail", {"tempfail", "accept", "reject"});
  c->on_error = on_error == "accept" ? OnError::Accept : on_error == "reject" ? OnError::Reject : OnError::Tempfail;
  c->max_connections = reader.unsigned_integer("max_connections", 8, 1, 1024);
  c->thresholds = read_thresholds(reader);
  if (const nlohmann::json* profiles = reader.object("profiles")) {
    for (const auto& [name, entry] : profiles->items()) {
      std::string path = reader.path() + ".profiles." + name;
      if (!entry.is_object()) throw config::ConfigError(path + ": expected object");
      PolicyConfigReader sub(entry, path);
      c->profiles[name] = c->thresholds.overlaid(read_thresholds(sub));
      sub.finish();
    }
  }
  return c;
}

std::unique_ptr<PolicyFactory> make_rspamd_factory(PolicyConfigReader& reader, const config::Config&) {
  return std::make_unique<RspamdFactory>(read_rspamd_config(reader));
}

}  // namespace dotgate::policy
