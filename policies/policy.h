// policies/policy.h — what a policy is: optional asynchronous hooks that return a Verdict.
//
// One Policy object per session (made by its PolicyFactory, which holds the validated config).
// Hooks run in the order the chain gives them and complete through `done`, exactly once, on the
// session's loop; they may complete at once (inside the call) or later. A policy that keeps
// `done` moves it out of itself before calling it (libuv's rule: clear a callback before calling
// it): the chain may free the policy inside that call. After cancel() a policy
// must not call `done` any more (the session is closing). `finished` always runs, even after a
// disconnect or timeout, for audit and counters. A Verdict other than pass must carry a 4xx/5xx
// reply; the chain replaces anything else by 451 4.3.0 (a broken policy never accepts by accident).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

#include "lib/smtp/command.h"
#include "lib/smtp/reply.h"

namespace dotgate::spool {
class Spool;
}

namespace dotgate::policy {

enum class Action { Pass, Fail, FailKeep };

// What a passing data_end verdict asks to change in the relayed message (rspamd's "add header",
// "rewrite subject"): header fields removed (every field of that name, case-insensitive), then
// fields added at the top of the header section. The session applies the edits of every passing
// policy by replaying the spooled message to a fresh downstream transaction (the original body
// has already streamed without them). Values are unfolded text; the session folds nothing and
// refuses CR/LF inside them.
struct MessageEdit {
  std::vector<std::pair<std::string, std::string>> add_headers;  // name, value
  std::vector<std::string> remove_headers;
  bool empty() const { return add_headers.empty() && remove_headers.empty(); }
  // Another policy's edits after these (configured order: removals, then additions, each in order).
  void append(const MessageEdit& more) {
    remove_headers.insert(remove_headers.end(), more.remove_headers.begin(), more.remove_headers.end());
    add_headers.insert(add_headers.end(), more.add_headers.begin(), more.add_headers.end());
  }
};

struct Verdict {
  Action action = Action::Pass;
  smtp::Reply reply;   // for Fail / FailKeep
  std::string reason;  // for the log
  // Why the verdict service gave no usable answer, when it did not ("connect", "timeout",
  // "status", "malformed", "crash", ...): counted per policy in dotgate_policy_errors_total.
  // Empty when the service answered (whatever it answered).
  std::string error{};
  MessageEdit edit{};  // for Pass
  // One word for the transaction's log line, whatever the action (greylisting: "new",
  // "passed", ...). A MAIL/RCPT answer that carries one is kept for that line (chain.h).
  std::string detail{};

  static Verdict pass() { return {}; }
  static Verdict fail(int code, std::string_view enhanced, std::string_view text, std::string reason = {}) {
    return {Action::Fail, smtp::Reply::make(code, enhanced, text), std::move(reason)};
  }
  bool passed() const { return action == Action::Pass; }
};

// The refusing actions a verdict service or an operator can name ("reject", "tempfail",
// "quarantine"), with the reply each gets when nothing more specific was said. One table for
// every policy, so the same action reads the same to a client whichever policy refused.
struct ActionDefaults {
  std::string_view name;
  Action action;
  int code;
  std::string_view enhanced;
  std::string_view text;
};
inline constexpr ActionDefaults kRefusalActions[] = {
    {"reject", Action::Fail, 550, "5.7.1", "Message rejected by content filter"},
    {"tempfail", Action::Fail, 451, "4.7.1", "Message deferred by content filter, try again later"},
    {"quarantine", Action::FailKeep, 550, "5.7.1", "Message rejected by content filter"},
};
// nullptr when `name` is none of them.
inline const ActionDefaults* refusal_action(std::string_view name) {
  for (const auto& a : kRefusalActions)
    if (a.name == name) return &a;
  return nullptr;
}

// What a policy may know about the session and the transaction so far.
struct Envelope {
  std::string client_address;
  std::string helo;
  std::string mail_from;
  std::vector<smtp::EsmtpParam> mail_params;
  std::vector<std::string> recipients;  // accepted so far
  std::uint64_t message_size = 0;       // at data_end
  // The recipients' profile (issue 5): selects per-profile overrides in a policy's own config
  // ("profiles": {"strict": {...}}). Empty: the policy's top-level settings.
  std::string profile;
  std::string queue_id;  // dotgate's id for this transaction (logs, verdict services)
};

enum class Outcome { Accepted, Rejected, Tempfailed, Aborted };
// What a reply to a message (the dot's, a verdict's) made of it: 2xx accepted, 4xx tempfailed,
// 5xx rejected.
inline Outcome outcome_of(const smtp::Reply& reply) {
  return reply.klass() == 2 ? Outcome::Accepted : reply.transient() ? Outcome::Tempfailed : Outcome::Rejected;
}

using Done = std::function<void(Verdict)>;
// The message at data_end, shared: a policy that works on it later (a thread-pool job, a
// spawned process) keeps its own reference, so the bytes outlive a cancelled run.
using SpoolRef = std::shared_ptr<const spool::Spool>;

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  virtual void mail(const Envelope&, Done done) { done(Verdict::pass()); }
  virtual void rcpt(const Envelope&, const std::string& /*recipient*/, Done done) { done(Verdict::pass()); }
  virtual void data_end(const Envelope&, SpoolRef, Done done) { done(Verdict::pass()); }
  virtual void finished(const Envelope&, Outcome) {}
  virtual void cancel() {}
};

// What a policy instance may use from its session: the loop its asynchronous work runs on
// (timers, spawned processes, HTTP connections), and the spool directory for files it writes.
struct PolicyContext {
  uv_loop_t* loop = nullptr;
  std::string spool_directory;
};

class PolicyFactory {
 public:
  virtual ~PolicyFactory() = default;
  virtual std::unique_ptr<Policy> create(const PolicyContext& context) const = 0;
  bool required = false;  // runs even after an earlier policy failed (seed 004)
};

}  // namespace dotgate::policy
