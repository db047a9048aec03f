// policies/greylist_metrics.cc — see greylist_metrics.h.
#include "policies/greylist_metrics.h"

#include <map>
#include <memory>
#include <mutex>

#include "lib/store/store_metrics.h"
#include "policies/policy_metrics.h"

namespace dotgate::policy {

namespace {
constexpr std::string_view kOutcomes[] = {"new", "early_retry", "passed", "auto_allowed", "exempt", "store_error"};
constexpr std::string_view kStages[] = {"rcpt", "dot"};
static_assert(std::size(kOutcomes) == static_cast<std::size_t>(GreylistOutcome::kCount));
static_assert(std::size(kStages) == static_cast<std::size_t>(GreylistStage::kCount));

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::unique_ptr<GreylistStats>, std::less<>> stats;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: workers may record at exit
  return *r;
}

void render_all(std::string& out) {
  out += "# HELP dotgate_greylist_outcomes_total Greylisting decisions, by stage (rcpt, dot) and outcome.\n"
         "# TYPE dotgate_greylist_outcomes_total counter\n";
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    for (const auto& [_, s] : r.stats) s->render(out);
  }
  store::render_store_metrics(out);
}
}  // namespace

std::string_view greylist_outcome_name(GreylistOutcome outcome) { return kOutcomes[static_cast<int>(outcome)]; }

void GreylistStats::render(std::string& out) const {
  for (std::size_t st = 0; st < counts_.size(); ++st) {
    for (std::size_t o = 0; o < counts_[st].size(); ++o) {
      out += "dotgate_greylist_outcomes_total{policy=\"" + name_ + "\",stage=\"" + std::string(kStages[st]) +
             "\",outcome=\"" + std::string(kOutcomes[o]) + "\"} " +
             std::to_string(counts_[st][o].load(std::memory_order_relaxed)) + "\n";
    }
  }
}

GreylistStats& greylist_stats(const std::string& name) {
  static std::once_flag once;
  std::call_once(once, [] { add_policy_metrics_renderer(&render_all); });
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.stats.find(name);
  if (it == r.stats.end()) it = r.stats.emplace(name, std::make_unique<GreylistStats>(name)).first;
  return *it->second;
}

}  // namespace dotgate::policy
