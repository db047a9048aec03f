// lib/metrics/metrics.cc — Metrics: per-worker counter blocks, rendered as Prometheus text 0.0.4.
//
// add_worker() is called by proxy/ at start-up (once per worker thread, which then owns its block
// for writing); render() is called by the admin server's /metrics handler on the main loop, and
// sums the blocks with relaxed loads. A sum may mix counts from slightly different instants: that
// is what Prometheus expects from a scrape, and it keeps the hot path lock-free. Blocks and
// renderers live until the Metrics object (the process) ends.
#include "lib/metrics/metrics.h"

#include <iterator>
#include <string_view>

namespace dotgate::metrics {

namespace {

std::uint64_t load(const Counter& c) { return c.load(std::memory_order_relaxed); }

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(std::to_string(value)).append("\n");
}

// Label values, in enum order. Tied to the enums in metrics.h by the static_asserts.
constexpr std::string_view kOutcomes[] = {"accepted", "rejected", "tempfailed", "aborted"};
constexpr std::string_view kDownstreamErrors[] = {"connect", "timeout", "closed", "protocol"};
constexpr std::string_view kDirections[] = {"client_to_downstream", "downstream_to_client"};
constexpr std::string_view kPrdrOutcomes[] = {"accepted", "rejected", "tempfailed"};
constexpr std::string_view kLookupResults[] = {"hit", "miss", "error"};
static_assert(std::size(kPrdrOutcomes) == static_cast<std::size_t>(PrdrOutcome::kCount));
static_assert(std::size(kLookupResults) == static_cast<std::size_t>(ProfileLookupResult::kCount));
static_assert(std::size(kOutcomes) == static_cast<std::size_t>(TxOutcome::kCount));
static_assert(std::size(kDownstreamErrors) == static_cast<std::size_t>(DownstreamError::kCount));
static_assert(std::size(kDirections) == static_cast<std::size_t>(Direction::kCount));

// Sums of all worker blocks, taken once so that each family is rendered from one pass.
struct Totals {
  std::uint64_t open = 0, total = 0, refused = 0;
  std::array<std::uint64_t, std::size(kOutcomes)> transactions{};
  std::array<std::uint64_t, std::size(kDownstreamErrors)> downstream_errors{};
  std::array<std::uint64_t, std::size(kDirections)> bytes{};
  std::array<std::uint64_t, 6> replies{};
  std::uint64_t deferred = 0, prdr = 0, reused = 0, pool_idle = 0, pool_leased = 0;
  std::array<std::uint64_t, std::size(kPrdrOutcomes)> prdr_recipients{};
  std::array<std::uint64_t, std::size(kLookupResults)> profile_lookups{};

  void add(const WorkerCounters& w) {
    open += load(w.connections_open);
    total += load(w.connections_total);
    refused += load(w.connections_refused);
    for (std::size_t i = 0; i < transactions.size(); ++i) transactions[i] += load(w.transactions[i]);
    for (std::size_t i = 0; i < downstream_errors.size(); ++i) downstream_errors[i] += load(w.downstream_errors[i]);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] += load(w.bytes[i]);
    for (std::size_t i = 0; i < replies.size(); ++i) replies[i] += load(w.replies_by_class[i]);
    deferred += load(w.recipients_deferred);
    prdr += load(w.prdr_transactions);
    reused += load(w.downstream_reused);
    pool_idle += load(w.pool_idle);
    pool_leased += load(w.pool_leased);
    for (std::size_t i = 0; i < prdr_recipients.size(); ++i) prdr_recipients[i] += load(w.prdr_recipients[i]);
    for (std::size_t i = 0; i < profile_lookups.size(); ++i) profile_lookups[i] += load(w.profile_lookups[i]);
  }
};

void labelled(std::string& out, std::string_view name, std::string_view label, std::string_view value,
              std::uint64_t n) {
  std::string labels;
  labels.append(label).append("=\"").append(value).append("\"");
  sample(out, name, labels, n);
}

}  // namespace

WorkerCounters& Metrics::add_worker() {
  std::lock_guard lock(mutex_);
  workers_.push_back(std::make_unique<WorkerCounters>());
  return *workers_.back();
}

void Metrics::add_renderer(Renderer renderer) {
  std::lock_guard lock(mutex_);
  renderers_.push_back(std::move(renderer));
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  Totals t;
  for (const auto& w : workers_) t.add(*w);

  std::string out;
  out.reserve(2048);
  family(out, "dotgate_connections_open", "gauge", "SMTP client connections currently open.");
  sample(out, "dotgate_connections_open", "", t.open);
  family(out, "dotgate_connections_total", "counter", "SMTP client connections accepted.");
  sample(out, "dotgate_connections_total", "", t.total);
  family(out, "dotgate_connections_refused_total", "counter",
         "SMTP client connections refused (over max_connections, or while draining).");
  sample(out, "dotgate_connections_refused_total", "", t.refused);

  family(out, "dotgate_transactions_total", "counter", "Mail transactions ended, by outcome.");
  for (std::size_t i = 0; i < t.transactions.size(); ++i)
    labelled(out, "dotgate_transactions_total", "outcome", kOutcomes[i], t.transactions[i]);

  family(out, "dotgate_downstream_errors_total", "counter", "Failures talking to the downstream MTA, by reason.");
  for (std::size_t i = 0; i < t.downstream_errors.size(); ++i)
    labelled(out, "dotgate_downstream_errors_total", "reason", kDownstreamErrors[i], t.downstream_errors[i]);

  family(out, "dotgate_bytes_relayed_total", "counter", "Bytes relayed between client and downstream, by direction.");
  for (std::size_t i = 0; i < t.bytes.size(); ++i)
    labelled(out, "dotgate_bytes_relayed_total", "direction", kDirections[i], t.bytes[i]);

  // Index = the reply code's first digit; 2..5 are the only valid classes (RFC 5321 4.2.1).
  family(out, "dotgate_replies_total", "counter", "SMTP replies sent to clients, by class.");
  for (std::size_t d = 2; d <= 5; ++d) {
    const char cls[] = {static_cast<char>('0' + d), 'x', 'x', '\0'};
    labelled(out, "dotgate_replies_total", "class", cls, t.replies[d]);
  }

  family(out, "dotgate_recipients_deferred_total", "counter",
         "Recipients deferred (451/452 4.5.3) to split a transaction by profile.");
  sample(out, "dotgate_recipients_deferred_total", "", t.deferred);
  family(out, "dotgate_downstream_reused_total", "counter",
         "Downstream connections a session gave back to the pool for the next client (pool.max_sessions).");
  sample(out, "dotgate_downstream_reused_total", "", t.reused);
  family(out, "dotgate_downstream_pool_connections", "gauge",
         "Pooled downstream connections, by state (idle: greeted, waiting for a client; leased: lent to a client, counted in pool.size).");
  labelled(out, "dotgate_downstream_pool_connections", "state", "idle", t.pool_idle);
  labelled(out, "dotgate_downstream_pool_connections", "state", "leased", t.pool_leased);
  family(out, "dotgate_prdr_transactions_total", "counter", "Messages answered per recipient (PRDR).");
  sample(out, "dotgate_prdr_transactions_total", "", t.prdr);
  family(out, "dotgate_prdr_recipients_total", "counter", "Per-recipient PRDR replies, by outcome.");
  for (std::size_t i = 0; i < t.prdr_recipients.size(); ++i)
    labelled(out, "dotgate_prdr_recipients_total", "outcome", kPrdrOutcomes[i], t.prdr_recipients[i]);
  family(out, "dotgate_profile_lookups_total", "counter",
         "Recipient profile lookups, by result (hit: from the cache; miss: the service answered; error: no usable answer).");
  for (std::size_t i = 0; i < t.profile_lookups.size(); ++i)
    labelled(out, "dotgate_profile_lookups_total", "result", kLookupResults[i], t.profile_lookups[i]);

  for (const auto& r : renderers_) r(out);
  return out;
}

}  // namespace dotgate::metrics
