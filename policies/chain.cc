// policies/chain.cc — see chain.h.
#include "policies/chain.h"

#include "lib/spool/spool.h"

namespace dotgate::policy {

struct Chain::Run {
  Hook hook;
  Envelope envelope;
  std::string recipient;
  std::shared_ptr<const spool::Spool> spool;
  Done done;
  std::size_t next = 0;       // index of the next policy to ask
  Verdict verdict;            // first failure, or pass
  bool waiting = false;       // a policy has the call and has not answered
  bool in_call = false;       // inside the policy's hook call: its answer must not recurse
  std::size_t current = 0;
};

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

void Chain::run(Hook hook, const Envelope& envelope, const std::string& recipient,
                std::shared_ptr<const spool::Spool> spool, Done done) {
  auto r = std::make_shared<Run>();
  r->hook = hook;
  r->envelope = envelope;
  r->recipient = recipient;
  r->spool = std::move(spool);
  r->done = std::move(done);
  run_ = r;
  advance();
}

void Chain::advance() {
  // Loop while policies answer synchronously; return when one will answer later (its answer
  // calls advance() again). Policies must not answer after cancel(), so `this` is valid then.
  while (run_) {
    std::shared_ptr<Run> r = run_;
    // The next policy that must run: every one while passing, only required ones after a fail.
    while (r->next < entries_.size() && !r->verdict.passed() && !entries_[r->next].required) ++r->next;
    if (r->next >= entries_.size()) {
      Done done = std::move(r->done);
      Verdict v = std::move(r->verdict);
      r->spool.reset();  // the run is over: the session may reuse its spool at once
      run_.reset();
      done(std::move(v));
      return;
    }
    r->current = r->next++;
    r->waiting = true;
    r->in_call = true;
    std::weak_ptr<Run> weak = r;
    std::size_t asked = r->current;
    auto answer = [this, weak, asked](Verdict v) {
      auto run = weak.lock();
      // Dropped: a cancelled run, a second answer, or a late answer from an earlier policy.
      if (!run || run != run_ || !run->waiting || run->current != asked) return;
      run->waiting = false;
      v = sanitize(std::move(v));
      if (run->verdict.passed() && !v.passed()) run->verdict = std::move(v);
      if (!run->in_call) advance();
    };
    Policy& p = *entries_[r->current].policy;
    switch (r->hook) {
      case Hook::Mail: p.mail(r->envelope, answer); break;
      case Hook::Rcpt: p.rcpt(r->envelope, r->recipient, answer); break;
      case Hook::DataEnd: p.data_end(r->envelope, r->spool, answer); break;
    }
    r->in_call = false;
    if (r->waiting) return;
  }
}

void Chain::abandon(std::unique_ptr<Chain> chain) {
  if (!chain || !chain->run_) return;  // nothing in flight: freed here
  Chain* self = chain.release();
  std::shared_ptr<Run> r = self->run_;
  // From now on only required policies run: mark the run failed, and free the chain at its end.
  if (r->verdict.passed())
    r->verdict = Verdict::fail(421, "4.4.2", "session abandoned", "session abandoned");
  r->done = [self](Verdict) { delete self; };
  if (r->waiting && !self->entries_[r->current].required) {
    self->entries_[r->current].policy->cancel();  // its answer will not come
    r->waiting = false;
  }
  if (!r->waiting) self->advance();
}

void Chain::finished(const Envelope& envelope, Outcome outcome) {
  for (auto& e : entries_) e.policy->finished(envelope, outcome);
}

void Chain::cancel() {
  if (!run_) return;
  run_.reset();
  for (auto& e : entries_) e.policy->cancel();
}

}  // namespace dotgate::policy
