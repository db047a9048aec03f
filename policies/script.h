// policies/script.h — the `script` policy: an external program judges the message at the dot.
//
// Config (validated once by make_script_factory, errors carry "policies[i].key: ..." paths):
//   {"type": "script", "path": "/abs/program", "args": [...], "timeout": 30,
//    "on_error": "tempfail" | "accept" | "reject", "required": false}
// The program must exist and be executable when the config is loaded (start and SIGHUP).
//
// data_end runs the program with uv_spawn on the session's loop (never blocking it):
//   stdin   /dev/null
//   stdout  a pipe; its first line (at most kMaxReplyText bytes, control bytes dropped) becomes
//           the reply text when the program refuses the message
//   stderr  inherited (dotgate's own stderr, i.e. its log stream)
//   fd 3    the message, unstuffed (the RFC 5322 text the client meant), read-only in practice:
//           an unlinked temporary file in the spool directory, so nothing is left on disk after a
//           crash. DOTGATE_MESSAGE=/dev/fd/3 names it for programs that want a path.
//   env     DOTGATE_MESSAGE, DOTGATE_CLIENT_ADDRESS (the IP, no port), DOTGATE_HELO, DOTGATE_SENDER,
//           DOTGATE_RECIPIENTS (comma-separated), DOTGATE_SIZE (wire octets), and PATH (dotgate's,
//           or /usr/local/bin:/usr/bin:/bin). Nothing else of dotgate's environment leaks.
//   The program runs in its own session (setsid), so the timeout kills its whole process group
//   (a shell script's children too), not only the shell.
// Exit status: 0 pass; 1 tempfail 451 4.7.1; 2 reject 550 5.7.1; 3 reject and keep (FailKeep,
// 550 5.7.1, quarantined by the session). Killed at `timeout`, a signal, any other status, or a
// spawn failure follow `on_error`: tempfail 451 4.7.0 (default: a broken filter defers mail, it
// never loses or accepts it unjudged), reject 550 5.7.0, accept (fail-open, the admin's choice).
//
// Ownership: the policy owns at most one heap Run per message. A Run owns the process handle,
// the stdout pipe and a timer; it frees itself after its last close callback, so destroying the
// policy (or cancel()) mid-run is safe: the child is killed, `done` is dropped, the handles close
// on their own.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lib/config/config.h"
#include "policies/policy.h"

namespace dotgate::policy {

class PolicyConfigReader;

enum class ScriptOnError { Tempfail, Accept, Reject };

struct ScriptConfig {
  std::string path;
  std::vector<std::string> args;
  std::uint64_t timeout_ms = 30'000;
  ScriptOnError on_error = ScriptOnError::Tempfail;
};

class ScriptPolicy final : public Policy {
 public:
  // A reply text longer than this is cut: the program's output goes on the wire, and one SMTP
  // reply line must stay under 512 octets (RFC 5321 4.5.3.1.5) with code and enhanced code.
  static constexpr std::size_t kMaxReplyText = 200;

  ScriptPolicy(std::shared_ptr<const ScriptConfig> config, PolicyContext context)
      : config_(std::move(config)), context_(std::move(context)) {}
  ~ScriptPolicy() override;
  ScriptPolicy(const ScriptPolicy&) = delete;
  ScriptPolicy& operator=(const ScriptPolicy&) = delete;

  std::string_view name() const override { return "script"; }
  void data_end(const Envelope& envelope, SpoolRef spool, Done done) override;
  void cancel() override;

  struct Run;  // script.cc

 private:
  friend struct Run;
  std::shared_ptr<const ScriptConfig> config_;
  PolicyContext context_;
  Run* run_ = nullptr;  // the run in flight; it clears this when it completes
};

std::unique_ptr<PolicyFactory> make_script_factory(PolicyConfigReader& reader, const config::Config& config);

}  // namespace dotgate::policy
