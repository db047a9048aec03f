// policies/chain.h — runs a session's policies for one hook, in configured order.
//
// The first fail stops the chain, except that policies marked `required` still run (their own
// fail then wins only if nothing failed before). One hook runs at a time per session; the
// session waits for `done`. Synchronous completions are handled in a loop, not by recursion,
// so a chain of instant policies cannot grow the stack. cancel() stops delivery of any result
// (the session is closing) and cancels the policy in flight.
#pragma once

#include <memory>
#include <vector>

#include "policies/policy.h"

namespace dotgate::policy {

class Chain {
 public:
  struct Entry {
    std::unique_ptr<Policy> policy;
    bool required = false;
  };
  enum class Hook { Mail, Rcpt, DataEnd };

  Chain() = default;
  explicit Chain(std::vector<Entry> entries) : entries_(std::move(entries)) {}
  ~Chain();
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  // `recipient` is for Hook::Rcpt, `spool` for Hook::DataEnd. The run shares the spool: after
  // abandon() required policies may still read it when the session is gone.
  void run(Hook hook, const Envelope& envelope, const std::string& recipient,
           std::shared_ptr<const spool::Spool> spool, Done done);
  void finished(const Envelope& envelope, Outcome outcome);
  void cancel();
  // The session is going away (client gone, deadline, shutdown) while a hook may be running.
  // Takes the chain: the non-required policy in flight is cancelled, the required ones not yet
  // asked still run (seed 004: "required" scripts run even on disconnect or timeout, so
  // aborting is no loophole), their results go nowhere, and the chain frees itself after the
  // last one. With nothing running it is freed at once.
  static void abandon(std::unique_ptr<Chain> chain);
  bool running() const { return run_ != nullptr; }
  std::size_t size() const { return entries_.size(); }

 private:
  struct Run;
  void advance();
  std::vector<Entry> entries_;
  std::shared_ptr<Run> run_;
};

// A reply a policy may send: 4xx/5xx, valid code. Anything else becomes 451 4.3.0.
Verdict sanitize(Verdict verdict);

}  // namespace dotgate::policy
