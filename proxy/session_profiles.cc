// proxy/session_profiles.cc — per-recipient profiles in a Session (issue 5; seeds 000, 001, 003).
//
// The split: the first recipient forwarded fixes the transaction's profile; a recipient of
// another profile gets the deferral (451/452 4.5.3, per client class) and is not forwarded, so
// each message the MTA receives is judged by one profile. Clients that do not retry
// (split.never_defer) keep every recipient; their message is judged under each profile present
// and the first refusal decides. A PRDR client is never deferred: after its dot it hears 353,
// one reply per recipient from that recipient's profile verdict, and a final reply; the MTA
// receives the message for the accepted recipients only (a replay when some were refused).
// Which profile: the config rules, or first the lookup service (profile_lookup) when configured:
// asked at RCPT before the RCPT policies and the split, the answer kept for the transaction.
#include <algorithm>

#include "lib/log/log.h"
#include "lib/lookup/profile_cache.h"
#include "lib/smtp/prdr.h"
#include "proxy/profile_lookup.h"
#include "proxy/session.h"

namespace dotgate::proxy {

std::string Session::rules_profile(const std::string& address) const {
  const config::ProfileConfig* p = config_.profiles.resolve(address);
  return p ? p->name : std::string();
}

std::string Session::profile_of(const std::string& address) const {
  if (!config_.profiles.enabled()) return {};
  if (!tx_.resolved_profiles.empty()) {
    auto it = tx_.resolved_profiles.find(lookup::ProfileCache::key(address));
    if (it != tx_.resolved_profiles.end()) return it->second;
  }
  return rules_profile(address);
}

// ---- the profile step of an RCPT: the lookup, then the split -----------------------------------

void Session::resolve_recipient(ParkedCommand& parked) {
  if (config_.profile_lookup.enabled &&
      !tx_.resolved_profiles.contains(lookup::ProfileCache::key(parked.command.address))) {
    start_lookup(parked.command.address);  // answered at once (the cache) or later; then here again
    return;
  }
  parked.profiled = true;
  if (defer_recipient(parked.command)) parked_.reset();
}

void Session::start_lookup(const std::string& address_ref) {
  std::string address = address_ref;  // the parked command may be gone by the time it is answered
  if (!profile_lookup_) profile_lookup_ = host_.profile_lookup(config_);  // kept until the session ends
  if (!profile_lookup_) {
    lookup_answered(address, lookup::ProfileAnswer::failed("worker shutting down"), false);
    return;
  }
  if (auto hit = profile_lookup_->cached(address)) {
    lookup_answered(address, *hit, true);
    return;
  }
  lookup_running_ = true;
  std::uint64_t started = uv_now(host_.loop());
  lookup_ticket_ = profile_lookup_->fetch(address, [this, address, started](lookup::ProfileAnswer answer) {
    // From the loop; never after close_all(), which cancels the ticket.
    lookup_running_ = false;
    lookup_ticket_ = 0;
    if (state_ == State::Closing) return;
    if (answer.kind == lookup::ProfileAnswer::Kind::Error)
      answer.error += " after " + std::to_string(uv_now(host_.loop()) - started) + " ms";
    if (parked_) lookup_answered(address, answer, false);  // the RCPT waits in parked_ throughout
    pump();
  });
}

void Session::lookup_answered(const std::string& address, const lookup::ProfileAnswer& answer, bool from_cache) {
  using Kind = lookup::ProfileAnswer::Kind;
  using Result = metrics::ProfileLookupResult;
  std::string key = lookup::ProfileCache::key(address);
  if (answer.kind != Kind::Error) {
    counters_.add(counters_.profile_lookups[static_cast<int>(from_cache ? Result::Hit : Result::Miss)]);
    // "No profile from the service": the rules decide, as they would without a service.
    std::string profile = answer.kind == Kind::Profile ? answer.profile : rules_profile(address);
    if (log::enabled(spdlog::level::debug))
      log::debug("recipient profile", {{"client", peer_}, {"rcpt", address}, {"profile", profile},
                                       {"from", answer.kind == Kind::Profile ? "service" : "rules"},
                                       {"cached", from_cache}});
    tx_.resolved_profiles[key] = std::move(profile);
    return;
  }
  counters_.add(counters_.profile_lookups[static_cast<int>(Result::Error)]);
  bool rules = config_.profile_lookup.on_error == config::ProfileLookupConfig::OnError::Rules;
  log::warn("profile lookup failed", {{"client", peer_}, {"rcpt", address}, {"reason", answer.error},
                                      {"outcome", rules ? "rules" : "tempfail"}});
  if (rules) {
    // Fail-open to the rules, as configured: the service only refines them.
    tx_.resolved_profiles[key] = rules_profile(address);
    return;
  }
  // Fail-closed: without its profile the recipient cannot be judged as it wants; the client
  // retries. Not forwarded, not cached: the next RCPT for it asks again.
  queue_local(replies::kProfileLookupFailed);
  tx_.recipient_replies.emplace_back(address, replies::kProfileLookupFailed.code);
  parked_.reset();
}

void Session::cancel_lookup() {
  if (lookup_ticket_ != 0 && profile_lookup_) profile_lookup_->cancel(lookup_ticket_);
  lookup_ticket_ = 0;
  lookup_running_ = false;
}

std::string Session::client_ip() const {
  // "192.0.2.1:port", "[2001:db8::1]:port", or (forwarded, PORT unknown) without the port.
  std::string a = client_address();
  if (!a.empty() && a.front() == '[') return a.substr(1, a.find(']') - 1);
  return a.substr(0, a.rfind(':'));
}

bool Session::never_defer() const { return config_.profiles.split.never_defer.matches(client_ip(), client_helo()); }

bool Session::defer_recipient(const smtp::Command& cmd) {
  if (!config_.profiles.enabled()) return false;
  std::string profile = profile_of(cmd.address);
  // PRDR and clients never deferred: every recipient stays; the message is judged per profile.
  config::SplitAction action = config::split_decision(tx_.prdr || never_defer(), tx_.profile_holders > 0, tx_.profile, profile);
  if (action == config::SplitAction::Keep) return false;
  if (action == config::SplitAction::Fix) {
    tx_.profile = profile;
  } else if (action == config::SplitAction::Defer) {
    const auto& split = config_.profiles.split;
    int code = split.code_for(client_ip(), client_helo());
    queue_local(smtp::Reply::make(code, "4.5.3", split.text));
    tx_.recipient_replies.emplace_back(cmd.address, code);
    counters_.add(counters_.recipients_deferred);
    log::debug("recipient deferred for the split",
               {{"client", peer_}, {"rcpt", cmd.address}, {"profile", profile}, {"transaction_profile", tx_.profile}});
    return true;
  }
  ++tx_.profile_holders;
  return false;
}

void Session::recipient_dropped(const std::string& profile) {
  // A forwarded recipient refused after all (a policy, the MTA): when none of the profile's
  // recipients is left, the next recipient may fix another profile.
  if (tx_.prdr || !config_.profiles.enabled() || profile != tx_.profile) return;
  if (tx_.profile_holders > 0) --tx_.profile_holders;
}

std::string Session::relayed_mail_line(const smtp::Command& cmd) const {
  std::string line = "MAIL FROM:<" + cmd.address + ">";
  for (const auto& p : cmd.params) {
    if (p.keyword == "PRDR") continue;
    line += " " + p.keyword;
    if (p.has_value) line += "=" + p.value;
  }
  return line;
}

const config::VerdictConfig& Session::verdict_config_for(const std::string& profile) const {
  const config::ProfileConfig* p = config_.profiles.find(profile);
  return p && p->verdict ? *p->verdict : config_.verdict;
}

// No client waits longer than its profiles' deadlines for the reply to its dot, and profiles do
// not wait for each other: each recipient profile of the message is judged by its own chain run,
// all at once, each bounded by its own profile's deadline.
void Session::start_judgement() {
  judgement_ = Judgement{};
  std::vector<std::string> profiles;
  for (const auto& p : tx_.recipient_profiles)
    if (std::find(profiles.begin(), profiles.end(), p) == profiles.end()) profiles.push_back(p);
  if (profiles.empty()) profiles.push_back({});
  std::uint64_t now = uv_now(host_.loop());
  std::uint64_t first_deadline = UINT64_MAX;
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    ProfileRun run;
    run.profile = profiles[i];
    if (i > 0) run.chain = make_chain();
    const config::VerdictConfig& v = verdict_config_for(run.profile);
    run.deadline_at = now + static_cast<std::uint64_t>(v.deadline.count());
    run.accept_on_deadline = v.accept_on_deadline;
    first_deadline = std::min(first_deadline, run.deadline_at);
    judgement_.runs.push_back(std::move(run));
  }
  policy_running_ = true;
  uv_timer_start(&verdict_timer_, &Session::on_verdict_timer, first_deadline - now, 0);
  judgement_.starting = true;  // answers given at once are collected; the check waits for the loop
  for (std::size_t i = 0; i < judgement_.runs.size() && state_ == State::Verdict; ++i) {
    policy::Envelope env = envelope();
    env.message_size = data_stream_.message_size();
    env.profile = judgement_.runs[i].profile;
    policy::Chain* chain = i == 0 ? chain_.get() : judgement_.runs[i].chain.get();
    chain->run(policy::Chain::Hook::DataEnd, std::move(env), {}, spool_, [this, i, chain](policy::Verdict v) {
      ProfileRun& run = judgement_.runs[i];
      for (const auto& r : chain->results()) judgement_.results.push_back({r, run.profile});
      run.done = true;
      run.verdict = std::move(v);
      check_judgement();
    });
  }
  judgement_.starting = false;
  if (state_ == State::Verdict) check_judgement();
}

void Session::abandon_profile_run(std::size_t index) {
  // Its non-required policies are cancelled, the required ones run on without us.
  if (index == 0) {
    policy::Chain::abandon(std::move(chain_));
    chain_ = make_chain();
  } else {
    policy::Chain::abandon(std::move(judgement_.runs[index].chain));
  }
}

void Session::check_judgement() {
  if (judgement_.starting || judgement_.finished || state_ != State::Verdict) return;
  auto& runs = judgement_.runs;
  bool all_done = std::all_of(runs.begin(), runs.end(), [](const ProfileRun& r) { return r.done; });
  bool decided = all_done;
  if (!decided && !tx_.prdr) {
    // One message for every recipient: the first refusal in recipient order decides it, as soon
    // as every profile before it has passed.
    for (const auto& r : runs) {
      if (!r.done) break;
      if (!r.verdict.passed()) {
        decided = true;
        break;
      }
    }
  }
  if (!decided) return;
  judgement_.finished = true;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (runs[i].done) continue;
    abandon_profile_run(i);
    runs[i].done = true;  // its verdict cannot matter any more
  }
  judgement_done();
}

void Session::profile_deadlines() {
  if (state_ != State::Verdict || judgement_.finished) return;
  std::uint64_t now = uv_now(host_.loop());
  std::uint64_t next = UINT64_MAX;
  for (std::size_t i = 0; i < judgement_.runs.size(); ++i) {
    ProfileRun& run = judgement_.runs[i];
    if (run.done) continue;
    if (run.deadline_at > now) {
      next = std::min(next, run.deadline_at);
      continue;
    }
    policy::Chain* chain = i == 0 ? chain_.get() : run.chain.get();
    // A refusal already certain (only required policies still work) stands: the deadline's
    // "accept" must not let through a message a policy has refused.
    std::optional<policy::Verdict> settled = chain ? chain->settled() : std::nullopt;
    log::warn("verdict deadline passed", {{"client", peer_}, {"queue_id", tx_.queue_id}, {"profile", run.profile},
                                          {"outcome", settled ? "refused before" : run.accept_on_deadline ? "accept" : "tempfail"}});
    abandon_profile_run(i);
    deadline_passed_ = true;
    run.done = true;
    if (settled) {
      run.verdict = std::move(*settled);
    } else {
      run.verdict = run.accept_on_deadline ? policy::Verdict::pass()
                                           : policy::Verdict{policy::Action::Fail, make_reply(replies::kVerdictDeadline),
                                                             "verdict deadline passed"};
    }
  }
  check_judgement();
  if (!judgement_.finished && next != UINT64_MAX)
    uv_timer_start(&verdict_timer_, &Session::on_verdict_timer, next - now, 0);
}

void Session::judgement_done() {
  policy_running_ = false;
  uv_timer_stop(&verdict_timer_);
  if (tx_.prdr) {
    prdr_verdicts();
    return;
  }
  policy::Verdict combined;
  for (auto& run : judgement_.runs) {
    policy::Verdict& v = run.verdict;
    if (!v.passed()) {
      combined = v;
      break;
    }
    combined.edit.append(v.edit);
  }
  on_verdict(std::move(combined));
}

void Session::prdr_verdicts() {
  if (state_ != State::Verdict || keeping_) return;
  counters_.add(counters_.prdr_transactions);
  // One copy, for the recipients that refused with keep; its record names just them, and the
  // reply of the first such verdict in RCPT order.
  std::optional<policy::Verdict> keep;
  std::vector<std::string> keep_for;
  for (std::size_t i = 0; i < tx_.recipients.size(); ++i) {
    const policy::Verdict& v = prdr_verdict_of(tx_.recipient_profiles[i]);
    if (v.action != policy::Action::FailKeep) continue;
    if (!keep) keep = v;
    keep_for.push_back(tx_.recipients[i]);
  }
  if (!keep) {
    prdr_finish(std::nullopt);
    return;
  }
  keep_message(std::move(*keep), [this](policy::Verdict kept) { prdr_finish(kept); }, std::move(keep_for));
}

policy::Verdict& Session::prdr_verdict_of(const std::string& profile) {
  for (auto& run : judgement_.runs)
    if (run.profile == profile) return run.verdict;
  return judgement_.runs.front().verdict;  // cannot happen: every recipient's profile was judged
}

void Session::prdr_finish(const std::optional<policy::Verdict>& kept) {
  tx_.prdr_refusals.assign(tx_.recipients.size(), std::nullopt);
  std::vector<std::size_t> accepted;
  policy::MessageEdit edit;
  for (std::size_t i = 0; i < tx_.recipients.size(); ++i) {
    const policy::Verdict& v = prdr_verdict_of(tx_.recipient_profiles[i]);
    if (v.passed()) {
      accepted.push_back(i);
    } else if (v.action == policy::Action::FailKeep && kept && kept->action != policy::Action::FailKeep) {
      // The copy could not be kept: they get the tempfail keep_message() turned it into, so a
      // message promised to be kept is never lost.
      tx_.prdr_refusals[i] = kept->reply;
    } else {
      tx_.prdr_refusals[i] = v.reply;
    }
  }
  for (auto& run : judgement_.runs) {
    const policy::Verdict& v = run.verdict;
    if (!v.passed()) continue;
    edit.append(v.edit);
  }
  if (!link_.connected() || !client_) {
    fail_session(replies::kDownstreamLost, "downstream gone before the dot");
    return;
  }
  if (accepted.empty()) {
    // Nobody takes it: the MTA never sees the dot.
    abort_downstream();
    enter_state(State::Command);
    PendingReply slot;
    slot.ready = true;
    slot.reply = make_reply(replies::kDotDownstreamError);  // replaced by prdr_wrap's final reply
    prdr_wrap(slot);
    policy::Outcome outcome = policy::outcome_of(slot.reply);
    smtp::Reply final_reply = slot.reply;
    pending_.push_back(std::move(slot));
    finish_transaction(outcome, final_reply);
    flush_replies();
    if (state_ != State::Closing) pump();
    return;
  }
  if (accepted.size() == tx_.recipients.size() && edit.empty()) {
    on_verdict(policy::Verdict::pass());  // the dot goes to the MTA as it is
    return;
  }
  // Some refused (or headers to add): the MTA gets the message again, for the accepted only.
  start_replay(edit, accepted);
}

void Session::prdr_wrap(PendingReply& slot) {
  if (!tx_.prdr) return;
  // slot.reply is what became of the message downstream for the recipients their profiles
  // accepted; each recipient hears its profile's refusal or that outcome.
  smtp::PrdrReplies r = smtp::assemble_prdr(tx_.recipients, tx_.prdr_refusals, slot.reply, make_reply(replies::kPrdrStart));
  tx_.prdr_codes.clear();
  for (std::size_t i = 1; i < r.preface.size(); ++i) {
    policy::Outcome outcome = policy::outcome_of(r.preface[i]);
    metrics::PrdrOutcome o = outcome == policy::Outcome::Accepted     ? metrics::PrdrOutcome::Accepted
                             : outcome == policy::Outcome::Tempfailed ? metrics::PrdrOutcome::Tempfailed
                                                                      : metrics::PrdrOutcome::Rejected;
    counters_.add(counters_.prdr_recipients[static_cast<int>(o)]);
    tx_.prdr_codes.push_back(r.preface[i].code);
  }
  slot.preface = std::move(r.preface);
  slot.reply = std::move(r.final_reply);
}

}  // namespace dotgate::proxy
