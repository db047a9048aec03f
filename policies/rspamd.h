// policies/rspamd.h — the `rspamd` policy: asks rspamd (its HTTP /checkv2 protocol) about the
// message at data_end and turns the answer into a Verdict (policies/rspamd_verdict.h says how).
//
// Config ("policies": [{"type": "rspamd", ...}]), read once and validated with key paths:
//   url              default http://127.0.0.1:11333/checkv2 (a normal worker; IP literal, no TLS)
//   timeout          seconds, default 20 (rspamd's own task_timeout is 8 s; under the session's
//                    60 s verdict deadline)
//   max_connections  per worker loop, default 8
//   on_error         tempfail (default, 451 4.7.0) | accept | reject: what a refused connection,
//                    a timeout, a non-2xx status or an answer that is not rspamd's JSON becomes
//   reject_score, tempfail_score, add_header_score   optional thresholds (see rspamd_verdict.h)
//   profiles         {"<profile>": {the same three keys}}: per recipient profile
//                    (Envelope::profile), over the top-level ones; a profile not listed here
//                    uses the top-level thresholds.
// The message goes unstuffed, as the client sent it; the envelope in request headers
// (policies/rspamd_request.h).
// Who owns what: like the `http` policy — the factory owns a ClientRegistry (one keep-alive
// http::Client per worker loop, policies/client_registry.h); one instance per session, at most
// one request in flight, cancelled by cancel() and the destructor, after which no `done` runs.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "lib/config/config.h"
#include "lib/http/client.h"
#include "policies/http.h"  // OnError
#include "policies/policy.h"
#include "policies/rspamd_verdict.h"

namespace dotgate::policy {

class PolicyConfigReader;
class ClientRegistry;

struct RspamdPolicyConfig {
  std::string url_text = "http://127.0.0.1:11333/checkv2";
  http::Url url;
  std::uint64_t timeout_ms = 20'000;
  OnError on_error = OnError::Tempfail;
  std::size_t max_connections = 8;
  RspamdThresholds thresholds;
  std::map<std::string, RspamdThresholds> profiles;  // each already over `thresholds`

  const RspamdThresholds& thresholds_for(const std::string& profile) const;
};

class RspamdPolicy final : public Policy {
 public:
  RspamdPolicy(std::shared_ptr<const RspamdPolicyConfig> config, std::shared_ptr<ClientRegistry> registry,
               uv_loop_t* loop);
  ~RspamdPolicy() override;
  std::string_view name() const override { return "rspamd"; }
  void data_end(const Envelope& envelope, SpoolRef spool, Done done) override;
  void cancel() override;

 private:
  std::shared_ptr<const RspamdPolicyConfig> config_;
  std::shared_ptr<ClientRegistry> registry_;
  uv_loop_t* loop_;
  http::Client* client_ = nullptr;  // retained from the registry for our lifetime
  std::uint64_t request_ = 0;       // in flight, 0 when none
};

// Throws config::ConfigError. Exposed (besides the registry line) for the unit tests.
std::shared_ptr<const RspamdPolicyConfig> read_rspamd_config(PolicyConfigReader& reader);
std::unique_ptr<PolicyFactory> make_rspamd_factory(PolicyConfigReader& reader, const config::Config& config);

}  // namespace dotgate::policy
