// policies/keywords.h — the `keywords` policy: word and phrase lists matched against the text a
// reader of the message would see.
//
// Config (validated once by make_keywords_factory; errors carry "policies[i].key: ..." paths):
//   {"type": "keywords",
//    "lists": [{"path": "/etc/dotgate/words.txt", "score": 1}, ...],   required, absolute paths
//    "threshold": 5,                                 refuse at score >= threshold (default 5)
//    "action": "reject" | "tempfail" | "quarantine", default reject
//    "code": 550, "enhanced": "5.7.1", "message": "...",   the reply (defaults per action)
//    "on_error": "tempfail" | "accept" | "reject",   when the message could not be scanned
//    "profiles": {"strict": {"threshold": 2, "action": ..., "code": ..., "enhanced": ..., "message": ...}}}
// A profile (Envelope::profile) overrides any of threshold/action/code/enhanced/message; the rest
// comes from the top level (code, enhanced and message only while the action keeps its class:
// a profile that turns a reject into a tempfail gets tempfail's defaults). An unknown or empty
// profile uses the top level.
//
// List files: UTF-8, one phrase a line; blank lines and lines starting with '#' are ignored; a
// line "phrase<TAB>score" sets that phrase's score, else the list's. Phrases are folded
// (lib/match/fold.h): a phrase listed twice (in any case, in any list) keeps the later score.
// The lists are read and compiled when the config is built — at start and on every SIGHUP — so a
// reload picks up edited lists, and a missing or unreadable file, or a bad line, refuses the
// config (the running one stays).
//
// data_end: the spool (wire form, dot-stuffed) is unstuffed, MIME-decoded (lib/mime) and matched
// (lib/match) on libuv's thread pool (uv_queue_work), never on the loop. The verdict is delivered
// from the after-work callback on the loop: pass below the threshold; at or above it the
// configured reply (Fail, or FailKeep for quarantine), reason "keywords: score 7 >= 5: viagra x2,
// casino x1". Any hit is logged (log::info "keywords hits").
//
// Ownership: a Job (shared_ptr) owns everything the thread-pool work touches: the uv_work_t, a
// reference to the spool and to the config (so to the immutable matcher), and the result. It
// keeps itself alive until its after-work callback has run, whatever happens to the policy.
// cancel() (and the destructor) drop the job's `done` and set a flag the worker polls between
// texts; uv_cancel removes it from the queue when it has not started. No `done` after cancel.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/config/config.h"
#include "lib/match/matcher.h"
#include "policies/policy.h"

namespace dotgate::policy {

class PolicyConfigReader;

enum class KeywordsOnError { Tempfail, Accept, Reject };

// What happens at or above the threshold (top level, or one profile).
struct KeywordsSettings {
  double threshold = 5;
  Action action = Action::Fail;
  smtp::Reply reply;
  std::string message;  // the reply's text alone (a profile inherits it)
};

struct KeywordsConfig {
  std::shared_ptr<const match::Matcher> matcher;
  KeywordsSettings settings;
  std::map<std::string, KeywordsSettings> profiles;
  KeywordsOnError on_error = KeywordsOnError::Tempfail;

  const KeywordsSettings& settings_for(const std::string& profile) const {
    auto it = profile.empty() ? profiles.end() : profiles.find(profile);
    return it == profiles.end() ? settings : it->second;
  }
};

// A list file's content into entries (appended to `out`). False, and `error` = "line N: why",
// on a line that is not UTF-8, has a bad score, or holds no phrase. Pure.
bool parse_word_list(std::string_view content, double default_score, std::vector<match::Entry>& out,
                     std::string& error);

// What a scan found. `error` is the Verdict::error label ("read", "decode") when it failed.
struct KeywordsScan {
  std::vector<match::Hit> hits;
  double score = 0;
  std::string error;
  std::string detail;  // for the log, with `error`
};


// The thread-pool work, callable directly: unstuff, decode, match. Stops early (returns what it
// has) once `cancelled` is set.
KeywordsScan scan_message(const match::Matcher& matcher, std::string_view wire,
                          const std::atomic<bool>* cancelled = nullptr);

// The verdict for a scan under `settings`. Pure.
Verdict keywords_verdict(const KeywordsConfig& config, const KeywordsSettings& settings, const KeywordsScan& scan);

class KeywordsPolicy final : public Policy {
 public:
  KeywordsPolicy(std::shared_ptr<const KeywordsConfig> config, uv_loop_t* loop)
      : config_(std::move(config)), loop_(loop) {}
  ~KeywordsPolicy() override;
  KeywordsPolicy(const KeywordsPolicy&) = delete;
  KeywordsPolicy& operator=(const KeywordsPolicy&) = delete;

  std::string_view name() const override { return "keywords"; }
  void data_end(const Envelope& envelope, SpoolRef spool, Done done) override;
  void cancel() override;

  struct Job;  // keywords.cc

 private:
  std::shared_ptr<const KeywordsConfig> config_;
  uv_loop_t* loop_;
  std::shared_ptr<Job> job_;  // the last job started; finished or not
};

std::unique_ptr<PolicyFactory> make_keywords_factory(PolicyConfigReader& reader, const config::Config& config);

}  // namespace dotgate::policy
