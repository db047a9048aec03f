// lib/metrics/rewrite_metrics.h — dotgate_reply_rewrites_total{rule}: how often each reply
// rewriting rule (configured or built-in) changed a reply on its way to the client.
//
// One RewriteCounter per rule name for the whole process, made when a rule set is loaded (start,
// SIGHUP) and never freed, so the proxy's rewriter keeps plain pointers and a count is one relaxed
// add. The enhanced_codes built-in fires on most replies of MTAs that send no enhanced codes, so
// a counter is striped: each thread adds to its own cache line (no shared line on the hot path, as
// WorkerCounters); a scrape sums the stripes.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace dotgate::metrics {

class RewriteCounter {
 public:
  void add();
  std::uint64_t value() const;

 private:
  static constexpr std::size_t kStripes = 16;  // threads beyond 16 share stripes: still correct
  struct alignas(64) Stripe {
    std::atomic<std::uint64_t> n{0};
  };
  std::array<Stripe, kStripes> stripes_{};
};

// The process-wide counter of `rule` (made on first use).
RewriteCounter& rewrite_counter(const std::string& rule);
// Appends the dotgate_reply_rewrites_total family for every rule seen so far (a Metrics renderer).
// A rule keeps its series, at its last value, after a reload removes it.
void render_rewrite_metrics(std::string& out);

}  // namespace dotgate::metrics
