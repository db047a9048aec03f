// lib/store/store_metrics.cc — see store_metrics.h.
#include "lib/store/store_metrics.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

namespace dotgate::store {

namespace {

// Seconds. A local LMDB read is microseconds, a Redis round trip on a LAN a fraction of a
// millisecond; the upper buckets show a struggling Redis before its timeout (0.5 s by default).
constexpr std::array<double, 12> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                             0.005,   0.01,   0.025,   0.05,   0.1,   0.5};
constexpr std::string_view kOps[] = {"get", "set", "increment"};
static_assert(std::size(kOps) == static_cast<std::size_t>(Op::kCount));

using Counter = std::atomic<std::uint64_t>;

struct OpStats {
  std::array<Counter, kBuckets.size() + 1> buckets{};  // not cumulative; render() sums
  Counter sum_ns{0};
};

struct BackendStats {
  std::array<OpStats, static_cast<std::size_t>(Op::kCount)> ops;
  std::mutex errors_mutex;  // taken only on an error
  std::map<std::string, std::uint64_t, std::less<>> errors;
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<BackendStats>, std::less<>> backends;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: workers may record at exit
  return *r;
}

BackendStats& stats_for(std::string_view backend) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.backends.find(backend);
  if (it == r.backends.end()) it = r.backends.emplace(std::string(backend), std::make_unique<BackendStats>()).first;
  return *it->second;
}

std::string format_bound(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", b);
  return buf;
}

}  // namespace

void record_latency(std::string_view backend, Op op, std::chrono::steady_clock::duration elapsed) {
  OpStats& s = stats_for(backend).ops[static_cast<std::size_t>(op)];
  double seconds = std::chrono::duration<double>(elapsed).count();
  std::size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  s.buckets[b].fetch_add(1, std::memory_order_relaxed);
  s.sum_ns.fetch_add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()),
                     std::memory_order_relaxed);
}

void record_error(std::string_view backend, std::string_view reason) {
  BackendStats& s = stats_for(backend);
  std::lock_guard lock(s.errors_mutex);
  auto it = s.errors.find(reason);
  if (it == s.errors.end()) it = s.errors.emplace(std::string(reason), 0).first;
  ++it->second;
}

void render_store_metrics(std::string& out) {
  std::string latency, errors;
  Registry& r = registry();
  {
    std::lock_guard lock(r.mutex);
    for (auto& [backend, stats] : r.backends) {
      for (std::size_t op = 0; op < stats->ops.size(); ++op) {
        const OpStats& s = stats->ops[op];
        std::string labels = "backend=\"" + backend + "\",op=\"" + std::string(kOps[op]) + "\"";
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b <= kBuckets.size(); ++b) {
          cumulative += s.buckets[b].load(std::memory_order_relaxed);
          std::string le = b < kBuckets.size() ? format_bound(kBuckets[b]) : "+Inf";
          latency += "dotgate_store_latency_seconds_bucket{" + labels + ",le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
        }
        char sum[64];
        std::snprintf(sum, sizeof sum, "%.9f", static_cast<double>(s.sum_ns.load(std::memory_order_relaxed)) / 1e9);
        latency += "dotgate_store_latency_seconds_sum{" + labels + "} " + sum + "\n";
        latency += "dotgate_store_latency_seconds_count{" + labels + "} " + std::to_string(cumulative) + "\n";
      }
      std::lock_guard errors_lock(stats->errors_mutex);
      for (const auto& [reason, n] : stats->errors)
        errors += "dotgate_store_errors_total{backend=\"" + backend + "\",reason=\"" + reason + "\"} " + std::to_string(n) + "\n";
    }
  }
  out += "# HELP dotgate_store_latency_seconds State store operations, from the call to the answer on the loop.\n"
         "# TYPE dotgate_store_latency_seconds histogram\n";
  out += latency;
  out += "# HELP dotgate_store_errors_total State store operations that failed, by reason.\n"
         "# TYPE dotgate_store_errors_total counter\n";
  out += errors;
}

}  // namespace dotgate::store
