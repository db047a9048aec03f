// policies/keywords.cc — see keywords.h. Three parts: the config (lists read and compiled, the
// replies validated), the scan (thread-pool work), and the Job that carries a scan from
// data_end to the verdict. Why on_error defaults to tempfail: a scan that failed (a spool that
// could not be read back, memory exhausted) must not let the message through unjudged, and a 4xx
// keeps it with the sender, who retries.
#include "policies/keywords.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <glib.h>

#include "lib/log/log.h"
#include "lib/match/fold.h"
#include "lib/mime/decode.h"
#include "lib/spool/spool.h"
#include "policies/registry.h"

namespace dotgate::policy {

namespace {

// A list file larger than this is refused: it is read whole at every reload, and a word list
// is kilobytes to a few megabytes; a mistaken path to a mailbox or a disk image must not
// exhaust memory at SIGHUP.
constexpr std::uintmax_t kMaxListBytes = 64u << 20;
// Reply text is configured by the admin but still goes on the wire: one SMTP line stays under
// 512 octets (RFC 5321 4.5.3.1.5) with its code and enhanced code.
constexpr std::size_t kMaxMessageText = 400;
// Hits named in the verdict's reason (all go to the log line).
constexpr std::size_t kMaxReasonHits = 10;

const ActionDefaults& action_defaults(const std::string& name) {
  const ActionDefaults* a = refusal_action(name);
  return a ? *a : kRefusalActions[0];  // the reader's choice() admits only the three
}

std::string format_score(double v) {
  char buf[64];
  if (std::fabs(v) < 1e15 && v == std::floor(v)) std::snprintf(buf, sizeof buf, "%.0f", v);
  else {
    std::snprintf(buf, sizeof buf, "%.3f", v);
    std::string s = buf;
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  return buf;
}

// A phrase for the log and the reason: no controls (a phrase is admin text, but the reason may
// reach a reply or a log line), at most 60 bytes on a character boundary.
std::string display(const std::string& phrase) {
  std::string out;
  for (char c : phrase) out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  if (out.size() > 60) {
    std::size_t cut = 60;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "...";
  }
  return out;
}

// ---- config -------------------------------------------------------------------------------------

bool printable(const std::string& text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  return true;
}

// Reads threshold/action/code/enhanced/message from `reader`, falling back to `base` (the top
// level's settings; for the top level, the built-in defaults).
KeywordsSettings read_settings(PolicyConfigReader& reader, const KeywordsSettings& base, const std::string& base_action) {
  KeywordsSettings s;
  s.threshold = reader.number("threshold", base.threshold, 0.001, 1e9);
  std::string action = reader.choice("action", base_action, {"reject", "tempfail", "quarantine"});
  const ActionDefaults& d = action_defaults(action);
  s.action = d.action;
  // A reply inherited from the top level is kept only while the action is of the same class.
  bool inherit = action_defaults(base_action).code / 100 == d.code / 100 && !base.reply.lines.empty();
  int base_code = inherit ? base.reply.code : d.code;
  std::string base_enhanced = inherit ? base.reply.enhanced().value_or(std::string(d.enhanced)) : std::string(d.enhanced);
  std::string base_text = inherit ? base.message : std::string(d.text);
  auto code = static_cast<int>(reader.unsigned_integer("code", static_cast<std::uint64_t>(base_code), 400, 599));
  if (code / 100 != d.code / 100 || !smtp::valid_reply_code(code))
    throw config::ConfigError(reader.path() + ".code: " + std::to_string(code) + " does not match action " + action +
                              " (expected " + std::to_string(d.code / 100) + "xx)");
  std::string enhanced = reader.string("enhanced", base_enhanced);
  if (!smtp::has_enhanced_code(code, enhanced) || enhanced.find(' ') != std::string::npos)
    throw config::ConfigError(reader.path() + ".enhanced: \"" + display(enhanced) + "\" is not an enhanced status code of class " +
                              std::to_string(code / 100));
  std::string text = reader.string("message", base_text);
  if (!printable(text) || text.size() > kMaxMessageText || text.find_first_not_of(' ') == std::string::npos)
    throw config::ConfigError(reader.path() + ".message: expected printable text of 1.." + std::to_string(kMaxMessageText) +
                              " bytes without control characters");
  s.reply = smtp::Reply::make(code, enhanced, text);
  s.message = std::move(text);
  return s;
}

std::string read_file(const std::string& path, const std::string& where) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw config::ConfigError(where + path + ": " + ec.message());
  if (size > kMaxListBytes)
    throw config::ConfigError(where + path + ": larger than " + std::to_string(kMaxListBytes >> 20) + " MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config::ConfigError(where + path + ": " + std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw config::ConfigError(where + path + ": read error");
  return content.str();
}

// Every list, in order; a phrase seen again (once folded) keeps its first place and the later
// score.
std::vector<match::Entry> read_lists(const nlohmann::json& lists, const std::string& path) {
  if (!lists.is_array() || lists.empty())
    throw config::ConfigError(path + ": expected a non-empty array of {\"path\", \"score\"} objects");
  std::vector<match::Entry> entries;
  std::unordered_map<std::string, std::size_t> seen;  // folded phrase -> index in entries
  for (std::size_t i = 0; i < lists.size(); ++i) {
    std::string item = path + "[" + std::to_string(i) + "]";
    if (!lists[i].is_object()) throw config::ConfigError(item + ": expected object");
    PolicyConfigReader reader(lists[i], item);
    if (!reader.has("path")) throw config::ConfigError(item + ".path: missing required key");
    std::string file = reader.string("path", "");
    double score = reader.number("score", 1, -1000, 1000);
    reader.finish();
    std::string where = item + ".path: ";
    if (file.empty() || file.front() != '/' || file.find('\0') != std::string::npos)
      throw config::ConfigError(where + "expected absolute path");
    std::string content = read_file(file, where);
    std::vector<match::Entry> parsed;
    std::string error;
    if (!parse_word_list(content, score, parsed, error)) throw config::ConfigError(where + file + ": " + error);
    for (auto& e : parsed) {
      std::string key = match::fold(e.phrase);  // as the matcher compares: spaces at the ends aside
      key.erase(0, key.find_first_not_of(' '));
      key.erase(key.find_last_not_of(' ') + 1);
      auto [it, fresh] = seen.emplace(std::move(key), entries.size());
      if (fresh) entries.push_back(std::move(e));
      else entries[it->second].score = e.score;
    }
  }
  return entries;
}

class KeywordsFactory final : public PolicyFactory {
 public:
  explicit KeywordsFactory(std::shared_ptr<const KeywordsConfig> config) : config_(std::move(config)) {}
  std::unique_ptr<Policy> create(const PolicyContext& context) const override {
    return std::make_unique<KeywordsPolicy>(config_, context.loop);
  }

 private:
  std::shared_ptr<const KeywordsConfig> config_;
};

Verdict verdict_on_error(KeywordsOnError on_error, const std::string& error, const std::string& detail) {
  Verdict v;
  std::string reason = "keywords: scan failed (" + error + (detail.empty() ? "" : ": " + detail) + ")";
  switch (on_error) {
    case KeywordsOnError::Accept:
      v = Verdict::pass();
      v.reason = reason + ", accepted";
      break;
    case KeywordsOnError::Reject:
      v = Verdict::fail(550, "5.7.0", "Message could not be checked", reason);
      break;
    case KeywordsOnError::Tempfail:
      v = Verdict::fail(451, "4.7.0", "Message could not be checked, try again later", reason);
      break;
  }
  v.error = error;
  return v;
}

}  // namespace

bool parse_word_list(std::string_view content, double default_score, std::vector<match::Entry>& out, std::string& error) {
  if (content.substr(0, 3) == "\xEF\xBB\xBF") content.remove_prefix(3);  // a BOM some editors write
  std::size_t line_no = 0;
  while (!content.empty()) {
    ++line_no;
    std::size_t nl = content.find('\n');
    std::string_view line = content.substr(0, nl);
    content.remove_prefix(nl == std::string_view::npos ? content.size() : nl + 1);
    auto fail = [&](const std::string& why) {
      error = "line " + std::to_string(line_no) + ": " + why;
      return false;
    };
    if (!g_utf8_validate(line.data(), static_cast<gssize>(line.size()), nullptr)) return fail("not UTF-8");
    auto trim = [](std::string_view s) {
      std::size_t b = s.find_first_not_of(" \t\r\f\v");
      if (b == std::string_view::npos) return std::string_view();
      return s.substr(b, s.find_last_not_of(" \t\r\f\v") - b + 1);
    };
    std::string_view text = trim(line);
    if (text.empty() || text.front() == '#') continue;
    // The score is after the last tab of the line as written (trailing blanks aside), so that
    // "<TAB>5" is a line without a phrase, not the phrase "5".
    std::string_view written = line.substr(0, line.find_last_not_of(" \t\r\f\v") + 1);
    double score = default_score;
    std::size_t tab = written.rfind('\t');
    if (tab != std::string_view::npos) {
      std::string field(trim(written.substr(tab + 1)));
      char* end = nullptr;
      errno = 0;
      double v = std::strtod(field.c_str(), &end);
      if (field.empty() || end != field.c_str() + field.size() || errno != 0 || !std::isfinite(v) || v < -1000 ||
          v > 1000)
        return fail("bad score \"" + display(field) + "\" (expected a number in -1000..1000 after the tab)");
      score = v;
      text = trim(written.substr(0, tab));
    }
    std::string folded = match::fold(text);
    if (folded.find_first_not_of(' ') == std::string::npos) return fail("no phrase");
    out.push_back({std::string(text), score});
  }
  return true;
}

KeywordsScan scan_message(const match::Matcher& matcher, std::string_view wire, const std::atomic<bool>* cancelled) {
  KeywordsScan result;
  std::vector<mime::Segment> segments = mime::decode_message(smtp::unstuff(wire));
  match::Matcher::Scan scan(matcher);
  for (const auto& segment : segments) {
    if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) break;
    scan.feed(segment.text);
  }
  result.hits = scan.hits();
  result.score = scan.score();
  return result;
}

Verdict keywords_verdict(const KeywordsConfig& config, const KeywordsSettings& settings, const KeywordsScan& scan) {
  if (!scan.error.empty()) return verdict_on_error(config.on_error, scan.error, scan.detail);
  // The biggest contributions first: they are what the admin wants to see in the reason.
  std::vector<match::Hit> hits = scan.hits;
  const auto& entries = config.matcher->entries();
  std::stable_sort(hits.begin(), hits.end(), [&](const match::Hit& a, const match::Hit& b) {
    return entries[a.entry].score * a.count > entries[b.entry].score * b.count;
  });
  std::string list;
  for (std::size_t i = 0; i < hits.size() && i < kMaxReasonHits; ++i)
    list += (i ? ", " : "") + display(entries[hits[i].entry].phrase) + " x" + std::to_string(hits[i].count);
  if (hits.size() > kMaxReasonHits) list += ", ...";
  bool refuse = scan.score >= settings.threshold;
  std::string reason = "keywords: score " + format_score(scan.score) + (refuse ? " >= " : " < ") +
                       format_score(settings.threshold) + (list.empty() ? "" : ": " + list);
  if (!refuse) {
    Verdict v = Verdict::pass();
    v.reason = std::move(reason);
    return v;
  }
  return Verdict{settings.action, settings.reply, std::move(reason)};
}

// ---- the job --------------------------------------------------------------------------------------

struct KeywordsPolicy::Job {
  uv_work_t req{};
  std::shared_ptr<Job> self;  // until after_work: libuv holds `req` until then
  std::shared_ptr<const KeywordsConfig> config;
  const KeywordsSettings* settings = nullptr;  // inside *config
  SpoolRef spool;
  std::string client, queue_id, profile;
  std::chrono::steady_clock::time_point started;
  Done done;                          // loop thread only; null once cancelled
  std::atomic<bool> cancelled{false};
  bool finished = false;              // loop thread only: after_work ran
  KeywordsScan result;                // written by the worker, read in after_work (libuv orders them)

  static void work(uv_work_t* req) {
    auto* job = static_cast<Job*>(req->data);
    if (job->cancelled.load(std::memory_order_relaxed)) return;
    try {
      std::string wire = job->spool->read_all();
      if (wire.size() != job->spool->size() || job->spool->failed()) {
        job->result.error = "read";
        job->result.detail = "spool read back " + std::to_string(wire.size()) + " of " + std::to_string(job->spool->size()) + " bytes";
        return;
      }
      job->result = scan_message(*job->config->matcher, wire, &job->cancelled);
    } catch (const std::exception& e) {  // bad_alloc on a huge message, mostly
      job->result = KeywordsScan{};
      job->result.error = "decode";
      job->result.detail = e.what();
    }
  }

  static void after_work(uv_work_t* req, int status) {
    auto* raw = static_cast<Job*>(req->data);
    std::shared_ptr<Job> job = std::move(raw->self);  // the job lives to the end of this call
    job->finished = true;
    job->spool.reset();  // the message is no longer needed, whatever the outcome
    if (status == UV_ECANCELED || job->cancelled.load(std::memory_order_relaxed) || !job->done) return;
    auto ms = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - job->started).count() / 1000.0;
    Verdict verdict = keywords_verdict(*job->config, *job->settings, job->result);
    job->log(verdict, ms);
    Done done = std::move(job->done);  // cleared before the call: the chain may free the policy in it
    job->done = nullptr;
    done(std::move(verdict));
  }

  void log(const Verdict& verdict, double ms) const {
    if (!result.error.empty()) {
      log::warn("keywords policy: scan failed", {{"client", client}, {"queue_id", queue_id}, {"error", result.error},
                                                 {"detail", result.detail}, {"ms", ms}});
      return;
    }
    if (result.hits.empty()) return;
    nlohmann::json hits = nlohmann::json::array();
    const auto& entries = config->matcher->entries();
    for (const auto& h : result.hits)
      hits.push_back({{"phrase", display(entries[h.entry].phrase)}, {"count", h.count}, {"score", entries[h.entry].score}});
    log::info("keywords hits", {{"client", client}, {"queue_id", queue_id}, {"profile", profile}, {"score", result.score},
                                {"threshold", settings->threshold}, {"refused", !verdict.passed()}, {"hits", hits},
                                {"ms", ms}});
  }
};

KeywordsPolicy::~KeywordsPolicy() { cancel(); }

void KeywordsPolicy::cancel() {
  if (!job_) return;
  std::shared_ptr<Job> job = std::move(job_);
  job->done = nullptr;
  job->cancelled.store(true, std::memory_order_relaxed);
  // Not started yet: out of the queue (after_work then runs with UV_ECANCELED). Running: EBUSY,
  // and the worker stops at its next check of the flag.
  if (!job->finished) uv_cancel(reinterpret_cast<uv_req_t*>(&job->req));
}

void KeywordsPolicy::data_end(const Envelope& envelope, SpoolRef spool, Done done) {
  cancel();  // one message at a time; a stale job (should not exist) is dropped
  const KeywordsSettings& settings = config_->settings_for(envelope.profile);
  if (loop_ == nullptr || !spool)
    return done(verdict_on_error(config_->on_error, "queue", loop_ == nullptr ? "no event loop" : "no message"));
  auto job = std::make_shared<Job>();
  job->config = config_;
  job->settings = &settings;
  job->spool = std::move(spool);
  job->client = envelope.client_address;
  job->queue_id = envelope.queue_id;
  job->profile = envelope.profile;
  job->started = std::chrono::steady_clock::now();
  job->done = std::move(done);
  job->req.data = job.get();
  job->self = job;
  int rc = uv_queue_work(loop_, &job->req, &Job::work, &Job::after_work);
  if (rc != 0) {
    job->self.reset();
    Done d = std::move(job->done);
    return d(verdict_on_error(config_->on_error, "queue", uv_strerror(rc)));
  }
  job_ = std::move(job);
}

std::unique_ptr<PolicyFactory> make_keywords_factory(PolicyConfigReader& reader, const config::Config& /*config*/) {
  auto c = std::make_shared<KeywordsConfig>();

  const nlohmann::json* lists = reader.array("lists");
  if (!lists) throw config::ConfigError(reader.path() + ".lists: missing required key");
  try {
    c->matcher = std::make_shared<const match::Matcher>(read_lists(*lists, reader.path() + ".lists"));
  } catch (const std::invalid_argument& e) {  // the lists' own parser refuses these first
    throw config::ConfigError(reader.path() + ".lists: " + e.what());
  }

  std::string action = reader.choice("action", "reject", {"reject", "tempfail", "quarantine"});
  // Settings are read with the reader once more for the defaults of `action`.
  KeywordsSettings defaults;
  c->settings = read_settings(reader, defaults, action);
  std::string on_error = reader.choice("on_error", "tempfail", {"tempfail", "accept", "reject"});
  c->on_error = on_error == "accept"   ? KeywordsOnError::Accept
                : on_error == "reject" ? KeywordsOnError::Reject
                                       : KeywordsOnError::Tempfail;

  if (const nlohmann::json* profiles = reader.object("profiles")) {
    for (auto it = profiles->begin(); it != profiles->end(); ++it) {
      std::string path = reader.path() + ".profiles." + it.key();
      if (!it.value().is_object()) throw config::ConfigError(path + ": expected object");
      PolicyConfigReader profile(it.value(), path);
      c->profiles[it.key()] = read_settings(profile, c->settings, action);
      profile.finish();
    }
  }
  log::info("keywords lists compiled", {{"policy", reader.path()}, {"phrases", c->matcher->entries().size()},
                                        {"states", c->matcher->states()}});
  return std::make_unique<KeywordsFactory>(std::move(c));
}

}  // namespace dotgate::policy
