// policies/chain.h — runs a session's policies for one hook, in configured order.
//
// Semantics (seed 004): the verdict is that of the first policy, in configured order, that
// fails; policies marked `required` always run, also after a fail, a disconnect or the deadline.
// MAIL and RCPT hooks ask one policy after the other (they are cheap, and a later one may depend
// on an earlier one having passed). At data_end the verdict services are independent and slow
// (a webhook, rspamd, a scanner), so they are asked concurrently: each policy starts at once
// unless it is marked `sequential`, which makes it wait until every policy before it answered
// (and then run only if they all passed, or if it is required). The result is the same as
// asking one after the other; only the time differs. As soon as the verdict is certain (a fail
// whose predecessors all passed), non-required policies still working are cancelled; the run
// ends when the required ones have answered too.
// Synchronous answers are handled in a loop, not by recursion, so a chain of instant policies
// cannot grow the stack. cancel() stops delivery of any result (the session is closing) and
// cancels the policies in flight.
// Each answer is timed and counted per policy (policies/policy_metrics.h); results() keeps the
// last run's per-policy outcome and latency for the transaction's log line.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policies/policy.h"

namespace dotgate::policy {

class PolicyStats;

// One policy's part in the last run, for the log line.
struct PolicyResult {
  std::string name;
  std::string outcome;  // pass, reject, tempfail, quarantine, cancelled
  std::string error;    // Verdict::error, when the service gave no usable answer
  double ms = 0;
  std::string detail{};     // Verdict::detail
  std::string recipient{};  // RCPT hook: whose
};

class Chain {
 public:
  struct Entry {
    std::unique_ptr<Policy> policy;
    bool required = false;
    bool sequential = false;  // data_end: waits for every policy before it
    std::string name{};       // for metrics and logs; the policy's own name() when empty
    PolicyStats* stats = nullptr;  // process-wide counters for this name; none in unit tests
    // The recipient profiles whose RCPT and data_end hooks this policy judges (issue 5);
    // every_profile: all of them, and messages without a profile. MAIL runs every policy.
    bool every_profile = true;
    std::vector<std::string> profiles{};
    bool applies(const std::string& profile) const;
  };
  enum class Hook { Mail, Rcpt, DataEnd };

  Chain() = default;
  explicit Chain(std::vector<Entry> entries);
  ~Chain();
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  // `recipient` is for Hook::Rcpt, `spool` for Hook::DataEnd. The run shares the spool: after
  // abandon() required policies may still read it when the session is gone.
  void run(Hook hook, Envelope envelope, std::string recipient, SpoolRef spool, Done done);
  void finished(const Envelope& envelope, Outcome outcome);
  void cancel();
  // The session is going away (client gone, deadline, shutdown) while a hook may be running.
  // Takes the chain: non-required policies in flight are cancelled, the required ones not yet
  // asked still run (seed 004: "required" scripts run even on disconnect or timeout, so
  // aborting is no loophole), their results go nowhere, and the chain frees itself after the
  // last one. With nothing running it is freed at once.
  static void abandon(std::unique_ptr<Chain> chain);
  bool running() const { return run_ != nullptr; }
  // The running hook's verdict when it is already certain (a fail whose predecessors all passed)
  // while required policies still work; nullopt otherwise. A deadline must not override it.
  std::optional<Verdict> settled() const;
  std::size_t size() const { return entries_.size(); }
  // The last data_end run's per-policy results (cleared when a new data_end run starts).
  const std::vector<PolicyResult>& results() const { return results_; }
  // The transaction's MAIL and RCPT answers that carry a detail (greylisting's outcome per
  // recipient), in order; cleared when a MAIL run starts. For the transaction's log line.
  const std::vector<PolicyResult>& envelope_results() const { return envelope_results_; }

 private:
  struct Run;
  enum class Slot { Idle, Waiting, Answered, Skipped, Cancelled };
  void advance();
  bool is_barrier(std::size_t index) const;
  void start(const std::shared_ptr<Run>& run, std::size_t index);
  void answer(const std::shared_ptr<Run>& run, std::size_t index, Verdict verdict);
  void cancel_after(Run& run, std::size_t failed_index);
  void record(Run& run, std::size_t index, const Verdict* verdict);
  std::vector<Entry> entries_;
  std::shared_ptr<Run> run_;
  std::vector<PolicyResult> results_;
  std::vector<PolicyResult> envelope_results_;
};

// A reply a policy may send: 4xx/5xx, valid code. Anything else becomes 451 4.3.0.
Verdict sanitize(Verdict verdict);

}  // namespace dotgate::policy
