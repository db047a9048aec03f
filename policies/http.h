// policies/http.h — the `http` policy: a generic JSON verdict webhook (README "HTTP verdict webhook").
//
// data_end POSTs the message (unstuffed, Content-Type: message/rfc822) to the configured URL with
// the envelope in X-Dotgate-* request headers and maps the JSON answer to a Verdict:
//   {"action": "accept"}                              -> pass
//   {"action": "reject",     "code", "enhanced", "message"} -> fail      (default 550 5.7.1)
//   {"action": "tempfail",   ...}                     -> fail      (default 451 4.7.1)
//   {"action": "quarantine", ...}                     -> fail_keep (default 550 5.7.1)
// Anything else — connection refused, timeout, non-2xx, a body that is not that JSON, a code of
// the wrong class — follows `on_error` (default tempfail 451 4.7.0) and is logged with the reason.
// Who owns what: the factory owns a ClientRegistry shared with every instance it made; the
// registry holds one http::Client (keep-alive pool) per worker loop, made on first use on that
// loop and freed once the last policy instance on that loop is gone (so a worker's loop ends with
// nothing of ours left open). One policy instance per session, with at most one request in flight;
// cancel() and the destructor cancel it, and no `done` runs after that.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "lib/config/config.h"
#include "lib/http/client.h"
#include "policies/policy.h"

namespace dotgate::policy {

class PolicyConfigReader;

enum class OnError { Tempfail, Accept, Reject };

struct HttpPolicyConfig {
  std::string url_text;
  http::Url url;
  std::uint64_t timeout_ms = 10'000;
  OnError on_error = OnError::Tempfail;
  std::size_t max_connections = 8;
};

// The answer's meaning, or why it has none. Pure, for the unit tests.
struct ResponseVerdict {
  bool ok = false;
  Verdict verdict;    // when ok
  std::string error;  // when !ok: "status 503", "not JSON: ...", "code 250 does not match reject"
};
ResponseVerdict verdict_from_response(int status, std::string_view body);

// What on_error makes of a failure (reason goes to the log and the verdict).
Verdict verdict_on_error(OnError on_error, const std::string& reason);

class ClientRegistry;

class HttpPolicy final : public Policy {
 public:
  HttpPolicy(std::shared_ptr<const HttpPolicyConfig> config, std::shared_ptr<ClientRegistry> registry,
             uv_loop_t* loop);
  ~HttpPolicy() override;
  std::string_view name() const override { return "http"; }
  void data_end(const Envelope& envelope, SpoolRef spool, Done done) override;
  void cancel() override;

 private:
  std::shared_ptr<const HttpPolicyConfig> config_;
  std::shared_ptr<ClientRegistry> registry_;
  uv_loop_t* loop_;
  http::Client* client_ = nullptr;  // retained from the registry for our lifetime
  std::uint64_t request_ = 0;       // in flight, 0 when none
};

std::unique_ptr<PolicyFactory> make_http_factory(PolicyConfigReader& reader, const config::Config& config);

}  // namespace dotgate::policy
