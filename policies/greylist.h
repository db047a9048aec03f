// policies/greylist.h — the `greylist` policy: defers a new (client network, sender, recipient)
// triplet at RCPT with 450 4.7.1 until the client comes back after `delay` and within `window`;
// optionally the same at the dot on a hash of the normalised message (policies/greylist_key.h
// says what is hashed and why). Its memory is the state store (lib/store: LMDB or Redis).
//
// Config ("policies": [{"type": "greylist", ...}], every key optional; README "Greylisting"):
//   delay 300, window 172800 (2 d), pass_lifetime 3024000 (35 d)   seconds
//   code 450, enhanced "4.7.1", text "Greylisted, try again in {wait} seconds"
//   ipv4_prefix 24, ipv6_prefix 64
//   auto_allow {"after": 5, "period": 604800}        after 0: never
//   exempt {"networks": [], "helo": [], "sender_domains": [], "profiles": []}
//   builtin_exemptions true      the shipped list of clients known not to retry
//   exempt_files []              more lists, same format (greylist_exemptions.h)
//   stage "rcpt" | "dot" | "both"
//   on_error "accept" (default) | "tempfail" | "reject": a store that gives no answer
// The decision (greylist_decide) is pure and unit-tested; the policy around it asks the store.
// Why on_error defaults to accept (unlike rspamd's tempfail): greylisting is a delay, not a
// verdict on the mail; with its memory gone it would defer every message of every sender on
// every attempt, which is an outage, not a safer mode. Accepting is counted (store_error) and
// logged (at most one line per 10 s and policy, with how many were suppressed).
// Who owns what: the factory holds the store service (shared by the process) and the stats; each
// instance (one per session) takes its loop's Store on first use and gives it back in its
// destructor; at most one decision in flight, dropped by cancel() (its store answers then go
// nowhere: they hold only a weak reference) and by the destructor.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "lib/config/config.h"
#include "lib/store/store.h"
#include "policies/greylist_exemptions.h"
#include "policies/greylist_metrics.h"
#include "policies/http.h"  // OnError
#include "policies/policy.h"

namespace dotgate::policy {

class PolicyConfigReader;

struct GreylistConfig {
  std::string name = "greylist";  // the metrics' label
  std::uint32_t delay = 300;
  std::uint32_t window = 172'800;
  std::uint32_t pass_lifetime = 3'024'000;
  int code = 450;
  std::string enhanced = "4.7.1";
  std::string text = "Greylisted, try again in {wait} seconds";
  int ipv4_prefix = 24;
  int ipv6_prefix = 64;
  std::uint32_t auto_allow_after = 5;
  std::uint32_t auto_allow_period = 604'800;
  GreylistExemptions exempt;  // the config's, the shipped list's and the files', together
  bool at_rcpt = true;
  bool at_dot = false;
  OnError on_error = OnError::Accept;
  std::shared_ptr<store::StoreService> store;
  GreylistStats* stats = nullptr;
};

// What the store remembers of a triplet (or a message): milliseconds since the epoch.
struct GreylistEntry {
  std::int64_t first_ms = 0;    // first attempt
  std::int64_t passed_ms = 0;   // 0 until a retry after the delay
  std::int64_t touched_ms = 0;  // last time its expiry was pushed back
};
std::string encode_greylist_entry(const GreylistEntry& entry);
std::optional<GreylistEntry> decode_greylist_entry(const std::string& text);

struct GreylistDecision {
  GreylistOutcome outcome = GreylistOutcome::New;
  std::int64_t wait_seconds = 0;        // New, EarlyRetry: for the reply's {wait}
  std::optional<GreylistEntry> write;   // to store under the key (with `ttl`)
  std::uint32_t ttl = 0;
  bool count_pass = false;              // a triplet proved its client retries: count the network
  bool passes() const { return outcome != GreylistOutcome::New && outcome != GreylistOutcome::EarlyRetry; }
};
// `entry`: what the store holds under the key (nullopt: nothing, expired, or not ours);
// `network_passes`: the network's count of proven retries (auto_allow), 0 when unknown.
GreylistDecision greylist_decide(const GreylistConfig& config, const std::optional<GreylistEntry>& entry,
                                 std::int64_t network_passes, std::int64_t now_ms);
// The deferral the client gets: code, enhanced code, text with {wait} filled in.
Verdict greylist_deferral(const GreylistConfig& config, std::int64_t wait_seconds, GreylistOutcome outcome);

class GreylistPolicy final : public Policy {
 public:
  GreylistPolicy(std::shared_ptr<const GreylistConfig> config, uv_loop_t* loop);
  ~GreylistPolicy() override;
  std::string_view name() const override { return "greylist"; }
  void rcpt(const Envelope& envelope, const std::string& recipient, Done done) override;
  void data_end(const Envelope& envelope, SpoolRef spool, Done done) override;
  void cancel() override;

 private:
  struct Ask;
  struct DigestJob;
  bool exempt(const Envelope& envelope, GreylistStage stage, Done& done);
  void judge(GreylistStage stage, std::string network, std::string key, const Envelope& envelope, Done done);
  void decided(const std::shared_ptr<Ask>& ask);
  Verdict store_failed(GreylistStage stage, const store::Result& result, const Envelope& envelope);
  store::Store* store();

  std::shared_ptr<const GreylistConfig> config_;
  uv_loop_t* loop_;
  store::Store* store_ = nullptr;  // acquired from the service on first use
  std::shared_ptr<Ask> ask_;       // the decision in flight
  std::shared_ptr<DigestJob> job_;  // the message hash being computed (stage dot)
  bool refreshed_allow_ = false;    // an auto-allowed network's count was pushed back this session
};

// Throws config::ConfigError. Exposed (besides the registry line) for the unit tests.
std::shared_ptr<GreylistConfig> read_greylist_config(PolicyConfigReader& reader, const config::Config& config);
std::unique_ptr<PolicyFactory> make_greylist_factory(PolicyConfigReader& reader, const config::Config& config);

}  // namespace dotgate::policy
