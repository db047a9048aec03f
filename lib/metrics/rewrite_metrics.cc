// lib/metrics/rewrite_metrics.cc — see rewrite_metrics.h.
#include "lib/metrics/rewrite_metrics.h"

#include <map>
#include <memory>
#include <mutex>

namespace dotgate::metrics {

namespace {

struct Registry {
  std::mutex mutex;  // taken at load and at scrape, never by add()
  std::map<std::string, std::unique_ptr<RewriteCounter>, std::less<>> counters;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: worker threads may count at exit
  return *r;
}

std::size_t this_thread_stripe() {
  static std::atomic<std::size_t> next{0};
  thread_local std::size_t stripe = next.fetch_add(1, std::memory_order_relaxed);
  return stripe;
}

// Rule names are [A-Za-z0-9._-] (lib/smtp/reply_rule_compiler.cc): nothing to escape in a label.
}  // namespace

void RewriteCounter::add() {
  stripes_[this_thread_stripe() % kStripes].n.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t RewriteCounter::value() const {
  std::uint64_t sum = 0;
  for (const auto& s : stripes_) sum += s.n.load(std::memory_order_relaxed);
  return sum;
}

RewriteCounter& rewrite_counter(const std::string& rule) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.counters.find(rule);
  if (it == r.counters.end()) it = r.counters.emplace(rule, std::make_unique<RewriteCounter>()).first;
  return *it->second;
}

void render_rewrite_metrics(std::string& out) {
  out += "# HELP dotgate_reply_rewrites_total Downstream replies changed on their way to the client, by rule.\n"
         "# TYPE dotgate_reply_rewrites_total counter\n";
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (const auto& [name, counter] : r.counters)
    out += "dotgate_reply_rewrites_total{rule=\"" + name + "\"} " + std::to_string(counter->value()) + "\n";
}

}  // namespace dotgate::metrics
