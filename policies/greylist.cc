// policies/greylist.cc — see greylist.h.
#include "policies/greylist.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "lib/log/log.h"
#include "lib/smtp/data_stream.h"
#include "lib/smtp/reply.h"
#include "lib/spool/spool.h"
#include "policies/greylist_key.h"
#include "policies/registry.h"

namespace dotgate::policy {

namespace {

constexpr const char* kKeyPrefix = "greylist:";
// An entry that passed has its expiry pushed back at most this often (in parts of
// pass_lifetime): a sender that writes every day costs one store write a few days, not one per
// message.
constexpr std::int64_t kRefreshParts = 8;
// Store errors: one log line per this, per process, with how many were not logged.
constexpr std::int64_t kErrorLogEveryMs = 10'000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string label(GreylistOutcome o) { return std::string(greylist_outcome_name(o)); }

class GreylistFactory final : public PolicyFactory {
 public:
  explicit GreylistFactory(std::shared_ptr<const GreylistConfig> config) : config_(std::move(config)) {}
  std::unique_ptr<Policy> create(const PolicyContext& context) const override {
    return std::make_unique<GreylistPolicy>(config_, context.loop);
  }

 private:
  std::shared_ptr<const GreylistConfig> config_;
};

std::atomic<std::int64_t> g_last_error_log_ms{0};
std::atomic<std::uint64_t> g_errors_not_logged{0};

}  // namespace

// ---- the pure part -------------------------------------------------------------------------------

std::string encode_greylist_entry(const GreylistEntry& e) {
  return "1 " + std::to_string(e.first_ms) + " " + std::to_string(e.passed_ms) + " " + std::to_string(e.touched_ms);
}

std::optional<GreylistEntry> decode_greylist_entry(const std::string& text) {
  GreylistEntry e;
  long long first = 0, passed = 0, touched = 0;
  char extra = 0;
  if (std::sscanf(text.c_str(), "1 %lld %lld %lld%c", &first, &passed, &touched, &extra) != 3) return std::nullopt;
  if (first <= 0 || passed < 0 || touched < 0) return std::nullopt;
  e.first_ms = first;
  e.passed_ms = passed;
  e.touched_ms = touched;
  return e;
}

GreylistDecision greylist_decide(const GreylistConfig& c, const std::optional<GreylistEntry>& entry,
                                 std::int64_t network_passes, std::int64_t now) {
  GreylistDecision d;
  if (c.auto_allow_after > 0 && network_passes >= static_cast<std::int64_t>(c.auto_allow_after)) {
    d.outcome = GreylistOutcome::AutoAllowed;
    return d;
  }
  const std::int64_t delay_ms = static_cast<std::int64_t>(c.delay) * 1000;
  const std::int64_t window_ms = static_cast<std::int64_t>(c.window) * 1000;
  // Not seen, or seen too long ago without a retry (the store's expiry should have said so; a
  // clock step or a window shortened by a reload must not let an old attempt count).
  if (!entry || (entry->passed_ms == 0 && (now - entry->first_ms > window_ms || entry->first_ms > now + 60'000))) {
    d.outcome = GreylistOutcome::New;
    d.wait_seconds = c.delay;
    d.write = GreylistEntry{now, 0, now};
    d.ttl = c.window;
    return d;
  }
  if (entry->passed_ms == 0) {
    std::int64_t elapsed = now - entry->first_ms;
    if (elapsed < delay_ms) {
      d.outcome = GreylistOutcome::EarlyRetry;
      d.wait_seconds = std::max<std::int64_t>(1, (delay_ms - elapsed + 999) / 1000);
      return d;  // the first attempt's time stands: retrying early does not restart the clock
    }
    d.outcome = GreylistOutcome::Passed;
    d.write = GreylistEntry{entry->first_ms, now, now};
    d.ttl = c.pass_lifetime;
    d.count_pass = true;
    return d;
  }
  d.outcome = GreylistOutcome::Passed;
  if (now - entry->touched_ms > static_cast<std::int64_t>(c.pass_lifetime) * 1000 / kRefreshParts) {
    d.write = GreylistEntry{entry->first_ms, entry->passed_ms, now};
    d.ttl = c.pass_lifetime;
  }
  return d;
}

Verdict greylist_deferral(const GreylistConfig& c, std::int64_t wait_seconds, GreylistOutcome outcome) {
  std::string text = c.text;
  for (auto at = text.find("{wait}"); at != std::string::npos; at = text.find("{wait}", at))
    text.replace(at, 6, std::to_string(wait_seconds));
  Verdict v = Verdict::fail(c.code, c.enhanced, text, "greylisted (" + label(outcome) + ")");
  v.detail = label(outcome);
  return v;
}

// ---- the policy ----------------------------------------------------------------------------------

struct GreylistPolicy::Ask {
  GreylistStage stage = GreylistStage::Rcpt;
  std::string key, network_key;
  Done done;
  int waiting = 0;
  bool want_count = false;
  store::Result entry, count;
  std::string client, queue_id;
};

struct GreylistPolicy::DigestJob {
  uv_work_t req{};
  std::shared_ptr<DigestJob> self;  // until after_work: libuv holds `req` until then
  GreylistPolicy* policy = nullptr;  // null once cancelled
  SpoolRef spool;
  std::string digest, error;
  Envelope envelope;
  Done done;
};

GreylistPolicy::GreylistPolicy(std::shared_ptr<const GreylistConfig> config, uv_loop_t* loop)
    : config_(std::move(config)), loop_(loop) {}

GreylistPolicy::~GreylistPolicy() {
  cancel();
  if (store_ != nullptr) config_->store->release(loop_);
}

void GreylistPolicy::cancel() {
  ask_.reset();  // its store answers find nothing to call
  if (job_) {
    job_->policy = nullptr;
    job_->done = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&job_->req));  // EBUSY when running: after_work drops it
    job_.reset();
  }
}

store::Store* GreylistPolicy::store() {
  if (store_ == nullptr && loop_ != nullptr) store_ = config_->store->acquire(loop_);
  return store_;
}

bool GreylistPolicy::exempt(const Envelope& envelope, GreylistStage stage, Done& done) {
  const char* rule = config_->exempt.match(greylist_client_ip(envelope.client_address), envelope.helo, envelope.mail_from);
  if (rule == nullptr && !envelope.profile.empty() && config_->exempt.exempts_profile(envelope.profile)) rule = "profile";
  if (rule == nullptr) return false;
  config_->stats->record(stage, GreylistOutcome::Exempt);
  Verdict v = Verdict::pass();
  v.detail = label(GreylistOutcome::Exempt);
  v.reason = std::string("exempt by ") + rule;
  Done d = std::move(done);
  d(std::move(v));
  return true;
}

void GreylistPolicy::rcpt(const Envelope& envelope, const std::string& recipient, Done done) {
  if (!config_->at_rcpt) return done(Verdict::pass());
  if (exempt(envelope, GreylistStage::Rcpt, done)) return;
  std::string network = greylist_network(envelope.client_address, config_->ipv4_prefix, config_->ipv6_prefix);
  std::string key = greylist_triplet_key(network, greylist_sender(envelope.mail_from), greylist_recipient(recipient));
  judge(GreylistStage::Rcpt, std::move(network), std::move(key), envelope, std::move(done));
}

void GreylistPolicy::data_end(const Envelope& envelope, SpoolRef spool, Done done) {
  if (!config_->at_dot) return done(Verdict::pass());
  if (exempt(envelope, GreylistStage::Dot, done)) return;
  cancel();
  if (loop_ == nullptr || !spool) return done(store_failed(GreylistStage::Dot, store::Result::fail("queue", "no event loop"), envelope));
  // Decoding the MIME of a large message takes milliseconds: off the loop, in libuv's pool.
  auto job = std::make_shared<DigestJob>();
  job->policy = this;
  job->spool = std::move(spool);
  job->envelope = envelope;
  job->done = std::move(done);
  job->req.data = job.get();
  job->self = job;
  int rc = uv_queue_work(
      loop_, &job->req,
      [](uv_work_t* req) {
        auto* j = static_cast<DigestJob*>(req->data);
        try {
          std::string wire = j->spool->read_all();
          if (wire.size() != j->spool->size() || j->spool->failed()) {
            j->error = "spool read failed";
            return;
          }
          j->digest = greylist_message_digest(smtp::unstuff(wire));
        } catch (const std::exception& e) {
          j->error = e.what();
        }
      },
      [](uv_work_t* req, int status) {
        auto* raw = static_cast<DigestJob*>(req->data);
        std::shared_ptr<DigestJob> j = std::move(raw->self);
        j->spool.reset();
        GreylistPolicy* p = j->policy;
        if (status == UV_ECANCELED || p == nullptr || !j->done) return;
        p->job_.reset();
        Done done = std::move(j->done);
        if (!j->error.empty()) return done(p->store_failed(GreylistStage::Dot, store::Result::fail("digest", j->error), j->envelope));
        const auto& c = *p->config_;
        std::string network = greylist_network(j->envelope.client_address, c.ipv4_prefix, c.ipv6_prefix);
        std::string key = greylist_message_key(network, greylist_sender(j->envelope.mail_from), j->envelope.recipients, j->digest);
        p->judge(GreylistStage::Dot, std::move(network), std::move(key), j->envelope, std::move(done));
      });
  if (rc != 0) {
    job->self.reset();
    Done d = std::move(job->done);
    return d(store_failed(GreylistStage::Dot, store::Result::fail("queue", uv_strerror(rc)), envelope));
  }
  job_ = std::move(job);
}

void GreylistPolicy::judge(GreylistStage stage, std::string network, std::string key, const Envelope& envelope, Done done) {
  store::Store* s = store();
  if (s == nullptr) return done(store_failed(stage, store::Result::fail("unavailable", "no event loop"), envelope));
  auto ask = std::make_shared<Ask>();
  ask->stage = stage;
  ask->key = kKeyPrefix + key;
  ask->network_key = std::string(kKeyPrefix) + "n:" + network;
  ask->done = std::move(done);
  ask->client = envelope.client_address;
  ask->queue_id = envelope.queue_id;
  ask->want_count = config_->auto_allow_after > 0;
  ask->waiting = ask->want_count ? 2 : 1;
  ask_ = ask;
  std::weak_ptr<Ask> weak = ask;
  // Both asked at once: with Redis they go out pipelined, one round trip for the two.
  if (ask->want_count) {
    s->get(ask->network_key, [this, weak](store::Result r) {
      auto a = weak.lock();
      if (!a || a != ask_) return;
      a->count = std::move(r);
      if (--a->waiting == 0) decided(a);
    });
  }
  s->get(ask->key, [this, weak](store::Result r) {
    auto a = weak.lock();
    if (!a || a != ask_) return;
    a->entry = std::move(r);
    if (--a->waiting == 0) decided(a);
  });
}

void GreylistPolicy::decided(const std::shared_ptr<Ask>& a) {
  ask_.reset();
  Envelope where;
  where.client_address = a->client;
  where.queue_id = a->queue_id;
  Done done = std::move(a->done);
  if (a->entry.failed() || (a->want_count && a->count.failed()))
    return done(store_failed(a->stage, a->entry.failed() ? a->entry : a->count, where));
  std::optional<GreylistEntry> entry;
  if (a->entry.status == store::Status::Ok) entry = decode_greylist_entry(a->entry.value);
  std::int64_t passes = 0;
  if (a->want_count && a->count.status == store::Status::Ok) passes = std::atoll(a->count.value.c_str());
  GreylistDecision d = greylist_decide(*config_, entry, passes, now_ms());
  config_->stats->record(a->stage, d.outcome);
  // The writes are not waited for: the client's answer does not depend on them (a lost write
  // costs that sender one more deferral, counted as a store error).
  auto ignore = [](store::Result) {};
  if (d.write) store_->set(a->key, encode_greylist_entry(*d.write), d.ttl, ignore);
  if (d.count_pass || (d.outcome == GreylistOutcome::AutoAllowed && !refreshed_allow_)) {
    // An auto-allowed network keeps its status while it keeps sending: its count's expiry moves
    // on, once per session.
    if (d.outcome == GreylistOutcome::AutoAllowed) refreshed_allow_ = true;
    store_->increment(a->network_key, config_->auto_allow_period, ignore);
  }
  if (!d.passes()) return done(greylist_deferral(*config_, d.wait_seconds, d.outcome));
  Verdict v = Verdict::pass();
  v.detail = label(d.outcome);
  done(std::move(v));
}

Verdict GreylistPolicy::store_failed(GreylistStage stage, const store::Result& result, const Envelope& envelope) {
  config_->stats->record(stage, GreylistOutcome::StoreError);
  std::int64_t now = now_ms();
  std::int64_t last = g_last_error_log_ms.load(std::memory_order_relaxed);
  if (now - last >= kErrorLogEveryMs && g_last_error_log_ms.compare_exchange_strong(last, now)) {
    log::warn("greylist policy: state store gave no answer",
              {{"client", envelope.client_address}, {"id", envelope.queue_id}, {"backend", config_->store->backend()},
               {"error", result.error}, {"detail", result.detail},
               {"on_error", config_->on_error == OnError::Accept ? "accept" : config_->on_error == OnError::Reject ? "reject" : "tempfail"},
               {"not_logged_since_last", g_errors_not_logged.exchange(0)}});
  } else {
    g_errors_not_logged.fetch_add(1, std::memory_order_relaxed);
  }
  Verdict v;
  switch (config_->on_error) {
    case OnError::Accept: v = Verdict::pass(); break;
    case OnError::Tempfail: v = Verdict::fail(451, "4.3.0", "Greylisting unavailable, try again later"); break;
    case OnError::Reject: v = Verdict::fail(550, "5.7.1", "Greylisting unavailable"); break;
  }
  v.reason = "greylist store error: " + result.error;
  v.error = result.error;
  v.detail = label(GreylistOutcome::StoreError);
  return v;
}

// ---- config ----------------------------------------------------------------------------------------

namespace {

std::uint32_t seconds(PolicyConfigReader& r, const char* key, std::uint32_t fallback, double min, double max) {
  return static_cast<std::uint32_t>(r.number(key, fallback, min, max));
}

void read_exempt(PolicyConfigReader& r, GreylistExemptions& out) {
  for (const auto& n : r.string_array("networks", {})) {
    config::Network net;
    std::string why = config::parse_network(n, net);
    if (!why.empty()) throw config::ConfigError(r.path() + ".networks: \"" + n + "\": " + why);
    out.clients.networks.push_back(net);
  }
  for (const auto& h : r.string_array("helo", {})) out.clients.helo_globs.push_back(h);
  for (const auto& d : r.string_array("sender_domains", {})) {
    std::string domain = exemption_domain(d);
    if (domain.empty()) throw config::ConfigError(r.path() + ".sender_domains: \"" + d + "\": expected a domain name");
    out.sender_domains.push_back(domain);
  }
  for (const auto& p : r.string_array("profiles", {})) out.profiles.push_back(p);
  r.finish();
}

}  // namespace

std::shared_ptr<GreylistConfig> read_greylist_config(PolicyConfigReader& reader, const config::Config& config) {
  auto c = std::make_shared<GreylistConfig>();
  c->name = reader.string("name", "greylist");
  // A delay under a second is no delay; over a day, most senders have given up (Postfix's
  // maximal_backoff_time is 4000 s, its queue lifetime 5 days).
  c->delay = seconds(reader, "delay", c->delay, 1, 86400);
  c->window = seconds(reader, "window", c->window, 60, 30 * 86400.0);
  if (c->window <= c->delay) throw config::ConfigError(reader.path() + ".window: must be longer than delay");
  c->pass_lifetime = seconds(reader, "pass_lifetime", c->pass_lifetime, 3600, 366 * 86400.0);
  c->code = static_cast<int>(reader.unsigned_integer("code", 450, 400, 459));
  if (!smtp::valid_reply_code(c->code)) throw config::ConfigError(reader.path() + ".code: expected a 4xx reply code (450)");
  c->enhanced = reader.string("enhanced", c->enhanced);
  if (c->enhanced.find(' ') != std::string::npos || !smtp::has_enhanced_code(c->code, c->enhanced))
    throw config::ConfigError(reader.path() + ".enhanced: expected an enhanced status code of class 4 (4.7.1)");
  c->text = reader.string("text", c->text);
  if (c->text.empty() || c->text.size() > 400) throw config::ConfigError(reader.path() + ".text: expected 1 to 400 characters");
  for (unsigned char ch : c->text)
    if (ch < 0x20 || ch == 0x7f) throw config::ConfigError(reader.path() + ".text: control characters are not allowed");
  c->ipv4_prefix = static_cast<int>(reader.unsigned_integer("ipv4_prefix", 24, 8, 32));
  c->ipv6_prefix = static_cast<int>(reader.unsigned_integer("ipv6_prefix", 64, 16, 128));
  if (const nlohmann::json* allow = reader.object("auto_allow")) {
    PolicyConfigReader r(*allow, reader.path() + ".auto_allow");
    c->auto_allow_after = static_cast<std::uint32_t>(r.unsigned_integer("after", c->auto_allow_after, 0, 1000000));
    c->auto_allow_period = seconds(r, "period", c->auto_allow_period, 3600, 366 * 86400.0);
    r.finish();
  }
  if (const nlohmann::json* ex = reader.object("exempt")) {
    PolicyConfigReader r(*ex, reader.path() + ".exempt");
    read_exempt(r, c->exempt);
  }
  if (reader.boolean("builtin_exemptions", true)) {
    std::string why = parse_exemption_list(builtin_exemption_list(), "deploy/greylist/no-retry.txt", c->exempt);
    if (!why.empty()) throw config::ConfigError(reader.path() + ".builtin_exemptions: " + why);
  }
  auto files = reader.string_array("exempt_files", {});
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::string where = reader.path() + ".exempt_files[" + std::to_string(i) + "]";
    std::ifstream in(files[i], std::ios::binary);
    if (!in) throw config::ConfigError(where + ": cannot open " + files[i]);
    std::ostringstream text;
    text << in.rdbuf();
    std::string why = parse_exemption_list(text.str(), files[i], c->exempt);
    if (!why.empty()) throw config::ConfigError(where + ": " + why);
  }
  std::string stage = reader.choice("stage", "rcpt", {"rcpt", "dot", "both"});
  c->at_rcpt = stage != "dot";
  c->at_dot = stage != "rcpt";
  std::string on_error = reader.choice("on_error", "accept", {"accept", "tempfail", "reject"});
  c->on_error = on_error == "tempfail" ? OnError::Tempfail : on_error == "reject" ? OnError::Reject : OnError::Accept;
  c->store = store::open_service(config.store);  // throws ConfigError (store.lmdb.path)
  c->stats = &greylist_stats(c->name);
  return c;
}

std::unique_ptr<PolicyFactory> make_greylist_factory(PolicyConfigReader& reader, const config::Config& config) {
  auto c = read_greylist_config(reader, config);
  log::info("greylisting configured", {{"policy", reader.path()}, {"backend", c->store->backend()}, {"delay", c->delay},
                                       {"window", c->window}, {"exemptions", c->exempt.size()},
                                       {"stage", c->at_rcpt && c->at_dot ? "both" : c->at_dot ? "dot" : "rcpt"}});
  return std::make_unique<GreylistFactory>(std::move(c));
}

}  // namespace dotgate::policy
