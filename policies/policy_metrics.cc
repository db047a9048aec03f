// policies/policy_metrics.cc — see policy_metrics.h.
#include "policies/policy_metrics.h"

#include <cstdio>
#include <memory>
#include <vector>

namespace dotgate::policy {

namespace {
constexpr std::string_view kOutcomeNames[] = {"pass", "reject", "tempfail", "quarantine", "cancelled"};
static_assert(std::size(kOutcomeNames) == static_cast<std::size_t>(PolicyOutcome::kCount));

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<PolicyStats>, std::less<>> stats;
  std::vector<void (*)(std::string&)> renderers;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: worker threads may record at exit
  return *r;
}

// Label values come from the config (policy names) and services (error reasons): escape them
// as the text format requires.
std::string escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string format_bound(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", b);
  return buf;
}
}  // namespace

std::string_view outcome_name(PolicyOutcome outcome) { return kOutcomeNames[static_cast<int>(outcome)]; }

void PolicyStats::record(PolicyOutcome outcome, double seconds, std::string_view error, bool timed) {
  outcomes_[static_cast<int>(outcome)].fetch_add(1, std::memory_order_relaxed);
  if (timed) {
    std::size_t b = 0;
    while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
    buckets_[b].fetch_add(1, std::memory_order_relaxed);
    latency_sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  }
  if (!error.empty()) {
    std::lock_guard lock(errors_mutex_);
    auto it = errors_.find(error);
    if (it == errors_.end()) it = errors_.emplace(std::string(error), 0).first;
    ++it->second;
  }
}

void PolicyStats::render(std::string& verdicts, std::string& latency, std::string& errors) const {
  std::string policy = "policy=\"" + escape(name_) + "\"";
  for (std::size_t i = 0; i < outcomes_.size(); ++i) {
    verdicts += "dotgate_policy_verdicts_total{" + policy + ",outcome=\"" + std::string(kOutcomeNames[i]) + "\"} " +
                std::to_string(outcomes_[i].load(std::memory_order_relaxed)) + "\n";
  }
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b <= kBuckets.size(); ++b) {
    cumulative += buckets_[b].load(std::memory_order_relaxed);
    std::string le = b < kBuckets.size() ? format_bound(kBuckets[b]) : "+Inf";
    latency += "dotgate_policy_latency_seconds_bucket{" + policy + ",le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  char sum[64];
  std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(latency_sum_us_.load(std::memory_order_relaxed)) / 1e6);
  latency += "dotgate_policy_latency_seconds_sum{" + policy + "} " + sum + "\n";
  latency += "dotgate_policy_latency_seconds_count{" + policy + "} " + std::to_string(cumulative) + "\n";
  std::lock_guard lock(errors_mutex_);
  for (const auto& [reason, n] : errors_)
    errors += "dotgate_policy_errors_total{" + policy + ",reason=\"" + escape(reason) + "\"} " + std::to_string(n) + "\n";
}

PolicyStats& policy_stats(const std::string& name) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.stats.find(name);
  if (it == r.stats.end()) it = r.stats.emplace(name, std::make_unique<PolicyStats>(name)).first;
  return *it->second;
}

void render_policy_metrics(std::string& out) {
  std::string verdicts, latency, errors;
  std::vector<void (*)(std::string&)> renderers;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    for (const auto& [_, stats] : r.stats) stats->render(verdicts, latency, errors);
    renderers = r.renderers;
  }
  out += "# HELP dotgate_policy_verdicts_total Policy answers by outcome (cancelled: no longer needed).\n"
         "# TYPE dotgate_policy_verdicts_total counter\n";
  out += verdicts;
  out += "# HELP dotgate_policy_latency_seconds Time from asking a policy to its answer.\n"
         "# TYPE dotgate_policy_latency_seconds histogram\n";
  out += latency;
  out += "# HELP dotgate_policy_errors_total Policy services that gave no usable answer, by reason.\n"
         "# TYPE dotgate_policy_errors_total counter\n";
  out += errors;
  for (auto* render : renderers) render(out);  // outside the lock: they take their own
}

void add_policy_metrics_renderer(void (*renderer)(std::string& out)) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.renderers.push_back(renderer);
}

}  // namespace dotgate::policy
