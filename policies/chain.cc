// policies/chain.cc — see chain.h.
#include "policies/chain.h"

#include <limits>

#include "lib/spool/spool.h"
#include "policies/policy_metrics.h"

namespace dotgate::policy {

namespace {
constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
using Clock = std::chrono::steady_clock;

PolicyOutcome outcome_of(const Verdict& v) {
  switch (v.action) {
    case Action::Pass: return PolicyOutcome::Pass;
    case Action::FailKeep: return PolicyOutcome::Quarantine;
    case Action::Fail: break;
  }
  return v.reply.permanent() ? PolicyOutcome::Reject : PolicyOutcome::Tempfail;
}
}  // namespace

struct Chain::Run {
  Hook hook;
  Envelope envelope;
  std::string recipient;
  SpoolRef spool;
  Done done;
  std::vector<Slot> slots;
  std::vector<Verdict> verdicts;
  std::vector<Clock::time_point> started;
  std::vector<PolicyResult> results;  // index-aligned; name empty: did not run
  std::size_t first_idle = 0;         // no Idle slot before it
  std::size_t first_open = 0;         // every slot before it is final (answered, skipped, cancelled)
  std::size_t first_fail = kNone;     // the lowest index that answered with a fail
  bool abandoned = false;
  bool in_advance = false;
  bool again = false;
};

Chain::Chain(std::vector<Entry> entries) : entries_(std::move(entries)) {}

Chain::~Chain() { cancel(); }

Verdict sanitize(Verdict v) {
  if (v.action == Action::Pass) return v;
  if (!smtp::valid_reply_code(v.reply.code) || v.reply.code < 400) {
    return Verdict::fail(451, "4.3.0", "Internal policy error, try again later",
                         "policy returned an invalid reply");
  }
  if (v.reply.lines.empty()) v.reply.lines.push_back(v.reply.code >= 500 ? "5.7.1 Rejected" : "4.7.1 Try again later");
  return v;
}

bool Chain::Entry::applies(const std::string& profile) const {
  if (every_profile) return true;
  for (const auto& p : profiles)
    if (p == profile) return true;
  return false;
}

bool Chain::is_barrier(std::size_t index) const {
  return run_->hook != Hook::DataEnd || entries_[index].sequential;
}

void Chain::run(Hook hook, Envelope envelope, std::string recipient, SpoolRef spool, Done done) {
  auto r = std::make_shared<Run>();
  r->hook = hook;
  r->envelope = std::move(envelope);
  r->recipient = std::move(recipient);
  r->spool = std::move(spool);
  r->done = std::move(done);
  r->slots.assign(entries_.size(), Slot::Idle);
  r->verdicts.resize(entries_.size());
  r->started.resize(entries_.size());
  r->results.resize(entries_.size());
  if (hook != Hook::Mail) {
    // Policies outside this recipient profile are not asked (and cannot fail the message).
    for (std::size_t i = 0; i < entries_.size(); ++i)
      if (!entries_[i].applies(r->envelope.profile)) r->slots[i] = Slot::Skipped;
  }
  if (hook == Hook::DataEnd) results_.clear();
  if (hook == Hook::Mail) envelope_results_.clear();
  run_ = r;
  advance();
}

void Chain::start(const std::shared_ptr<Run>& r, std::size_t index) {
  r->slots[index] = Slot::Waiting;
  r->started[index] = Clock::now();
  std::weak_ptr<Run> weak = r;
  auto answer = [this, weak, index](Verdict v) {
    auto run = weak.lock();
    // Dropped: a cancelled or finished run, a second answer, an answer after cancel().
    if (!run || run != run_ || run->slots[index] != Slot::Waiting) return;
    this->answer(run, index, std::move(v));
  };
  Policy& p = *entries_[index].policy;
  switch (r->hook) {
    case Hook::Mail: p.mail(r->envelope, answer); break;
    case Hook::Rcpt: p.rcpt(r->envelope, r->recipient, answer); break;
    case Hook::DataEnd: p.data_end(r->envelope, r->spool, answer); break;
  }
}

void Chain::answer(const std::shared_ptr<Run>& r, std::size_t index, Verdict v) {
  v = sanitize(std::move(v));
  r->slots[index] = Slot::Answered;
  record(*r, index, &v);
  if (!v.passed() && index < r->first_fail) {
    r->first_fail = index;
    // Nothing after a fail can change the verdict: stop what is not required.
    cancel_after(*r, index);
  }
  r->verdicts[index] = std::move(v);
  advance();  // inside advance() (a synchronous answer) this only asks the loop to go round again
}

void Chain::cancel_after(Run& r, std::size_t failed_index) {
  for (std::size_t k = failed_index + 1; k < entries_.size(); ++k) {
    if (entries_[k].required) continue;
    if (r.slots[k] == Slot::Waiting) {
      r.slots[k] = Slot::Cancelled;
      record(r, k, nullptr);
      entries_[k].policy->cancel();
    } else if (r.slots[k] == Slot::Idle) {
      r.slots[k] = Slot::Skipped;
    }
  }
}

void Chain::record(Run& r, std::size_t index, const Verdict* v) {
  const Entry& e = entries_[index];
  double seconds = std::chrono::duration<double>(Clock::now() - r.started[index]).count();
  PolicyOutcome outcome = v ? outcome_of(*v) : PolicyOutcome::Cancelled;
  std::string_view error = v ? std::string_view(v->error) : std::string_view();
  // MAIL and RCPT hooks: most policies do not implement them (the default passes at once), so
  // only refusals there are counted; data_end answers are all counted and timed.
  bool counted = r.hook == Hook::DataEnd || outcome != PolicyOutcome::Pass;
  if (e.stats && counted) e.stats->record(outcome, seconds, error, r.hook == Hook::DataEnd);
  PolicyResult& result = r.results[index];
  result.name = e.name.empty() ? std::string(e.policy->name()) : e.name;
  result.outcome = std::string(outcome_name(outcome));
  result.error = std::string(error);
  result.ms = seconds * 1000.0;
  result.detail = v ? v->detail : std::string();
  if (r.hook == Hook::Rcpt) result.recipient = r.recipient;
}

void Chain::advance() {
  if (!run_) return;
  std::shared_ptr<Run> r = run_;
  if (r->in_advance) {
    r->again = true;  // a synchronous answer: the loop below goes round again, no recursion
    return;
  }
  r->in_advance = true;
  const std::size_t n = entries_.size();
  do {
    r->again = false;
    for (std::size_t i = r->first_idle; i < n && r == run_; ++i) {
      if (r->slots[i] != Slot::Idle) {
        if (i == r->first_idle) ++r->first_idle;
        continue;
      }
      if (!entries_[i].required && (r->abandoned || r->first_fail < i)) {
        r->slots[i] = Slot::Skipped;  // cannot change the verdict
        if (i == r->first_idle) ++r->first_idle;
        continue;
      }
      while (r->first_open < n && r->slots[r->first_open] != Slot::Idle && r->slots[r->first_open] != Slot::Waiting)
        ++r->first_open;
      if (is_barrier(i) && r->first_open < i) continue;  // waits for the policies before it
      if (i == r->first_idle) ++r->first_idle;
      start(r, i);
    }
  } while (r == run_ && r->again);
  r->in_advance = false;
  if (r != run_) return;  // cancelled or abandoned-and-finished inside a policy call
  while (r->first_open < n && r->slots[r->first_open] != Slot::Idle && r->slots[r->first_open] != Slot::Waiting)
    ++r->first_open;
  if (r->first_open < n) return;  // someone still works; their answer calls advance() again

  Verdict verdict;
  if (r->first_fail != kNone) {
    verdict = std::move(r->verdicts[r->first_fail]);
  } else if (r->abandoned) {
    verdict = Verdict::fail(421, "4.4.2", "session abandoned", "session abandoned");
  } else {
    // Every policy passed: their edits together, in configured order.
    for (const auto& v : r->verdicts) verdict.edit.append(v.edit);
  }
  if (r->hook == Hook::DataEnd) {
    for (auto& result : r->results)
      if (!result.name.empty()) results_.push_back(std::move(result));
  } else {
    // Bounded by the policies times the recipients (smtp.max_recipients).
    for (auto& result : r->results)
      if (!result.name.empty() && !result.detail.empty()) envelope_results_.push_back(std::move(result));
  }
  Done done = std::move(r->done);
  r->spool.reset();  // the run is over: the session may reuse its spool at once
  run_.reset();
  done(std::move(verdict));
}

std::optional<Verdict> Chain::settled() const {
  if (!run_ || run_->first_fail == kNone) return std::nullopt;
  for (std::size_t i = 0; i < run_->first_fail; ++i)
    if (run_->slots[i] != Slot::Answered) return std::nullopt;
  return run_->verdicts[run_->first_fail];
}

void Chain::abandon(std::unique_ptr<Chain> chain) {
  if (!chain || !chain->run_) return;  // nothing in flight: freed here
  Chain* self = chain.release();
  std::shared_ptr<Run> r = self->run_;
  r->abandoned = true;
  r->done = [self](Verdict) { delete self; };
  for (std::size_t k = 0; k < self->entries_.size(); ++k) {
    if (self->entries_[k].required || r->slots[k] != Slot::Waiting) continue;
    r->slots[k] = Slot::Cancelled;  // its answer will not come
    self->record(*r, k, nullptr);
    self->entries_[k].policy->cancel();
  }
  self->advance();
}

void Chain::finished(const Envelope& envelope, Outcome outcome) {
  for (auto& e : entries_) e.policy->finished(envelope, outcome);
}

void Chain::cancel() {
  if (!run_) return;
  std::shared_ptr<Run> r = std::move(run_);
  for (std::size_t k = 0; k < entries_.size(); ++k) {
    if (r->slots[k] == Slot::Waiting) entries_[k].policy->cancel();
  }
}

}  // namespace dotgate::policy
