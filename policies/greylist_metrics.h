// policies/greylist_metrics.h — greylisting's outcomes (dotgate_greylist_outcomes_total{policy,
// stage, outcome}), next to the state store's latency and errors (lib/store/store_metrics.h).
//
// One block per policy name for the process, made when a greylist policy is built and never
// freed (a worker may record while the process ends); relaxed atomic adds on the hot path. The
// families are rendered through policy_metrics' extra renderers, added the first time a greylist
// policy is built (so a dotgate without greylisting shows none of them).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace dotgate::policy {

enum class GreylistOutcome { New, EarlyRetry, Passed, AutoAllowed, Exempt, StoreError, kCount };
enum class GreylistStage { Rcpt, Dot, kCount };
std::string_view greylist_outcome_name(GreylistOutcome outcome);

class GreylistStats {
 public:
  explicit GreylistStats(std::string name) : name_(std::move(name)) {}
  void record(GreylistStage stage, GreylistOutcome outcome) {
    counts_[static_cast<int>(stage)][static_cast<int>(outcome)].fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t count(GreylistStage stage, GreylistOutcome outcome) const {
    return counts_[static_cast<int>(stage)][static_cast<int>(outcome)].load(std::memory_order_relaxed);
  }
  void render(std::string& out) const;

 private:
  std::string name_;
  std::array<std::array<std::atomic<std::uint64_t>, static_cast<int>(GreylistOutcome::kCount)>,
             static_cast<int>(GreylistStage::kCount)>
      counts_{};
};

// The block for `name`; the first call also adds the greylist and store families to /metrics.
GreylistStats& greylist_stats(const std::string& name);

}  // namespace dotgate::policy
