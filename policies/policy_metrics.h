// policies/policy_metrics.h — per-policy counters: verdicts by outcome, latency histogram, errors
// by reason (dotgate_policy_* families on /metrics).
//
// One PolicyStats per policy name for the whole process, made on first use (when a PolicySet is
// built, at start-up or SIGHUP) and never freed, so a Chain entry can keep a plain pointer and the
// hot path is a few relaxed atomic adds. Workers share a block: a verdict is a rare event next to
// the bytes of a message, and the cache line is cold by the time the next one comes. Error
// reasons are a small open set ("timeout", "connect", ...) kept in a map behind a mutex: taken
// only when a service failed, never on a passing message.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace dotgate::policy {

enum class PolicyOutcome { Pass, Reject, Tempfail, Quarantine, Cancelled, kCount };
std::string_view outcome_name(PolicyOutcome outcome);

class PolicyStats {
 public:
  // Upper bounds of the latency buckets, seconds (+Inf is implicit).
  static constexpr std::array<double, 11> kBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,   1,    5,     30};

  explicit PolicyStats(std::string name) : name_(std::move(name)) {}
  // `timed`: data_end answers go into the latency histogram; MAIL/RCPT refusals only count.
  void record(PolicyOutcome outcome, double seconds, std::string_view error, bool timed = true);
  void render(std::string& verdicts, std::string& latency, std::string& errors) const;
  const std::string& name() const { return name_; }

 private:
  using Counter = std::atomic<std::uint64_t>;
  std::string name_;
  std::array<Counter, static_cast<int>(PolicyOutcome::kCount)> outcomes_{};
  std::array<Counter, kBuckets.size() + 1> buckets_{};  // not cumulative; render() sums
  Counter latency_sum_us_{0};
  mutable std::mutex errors_mutex_;
  std::map<std::string, std::uint64_t, std::less<>> errors_;
};

// The process-wide block for `name` (made on first use).
PolicyStats& policy_stats(const std::string& name);
// Appends the dotgate_policy_* families for every policy seen so far (a metrics::Renderer), then
// what the extra renderers write.
void render_policy_metrics(std::string& out);
// More families rendered with the policy ones: a policy type's own counters (greylisting's
// outcomes), added once by that type when it is first built, never removed. Same rules as
// metrics::Metrics::add_renderer (complete families, "dotgate_" names, relaxed reads).
void add_policy_metrics_renderer(void (*renderer)(std::string& out));

}  // namespace dotgate::policy
