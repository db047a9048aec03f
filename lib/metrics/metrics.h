// lib/metrics/metrics.h — dotgate's counters, one block per worker, summed at scrape time.
//
// Each worker thread writes only its own WorkerCounters (relaxed atomics: no lock, no shared cache
// line on the hot path); the admin thread reads all blocks and renders the Prometheus text format.
// Blocks live as long as the Metrics object (the process).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dotgate::metrics {

enum class TxOutcome { Accepted, Rejected, Tempfailed, Aborted, kCount };
enum class DownstreamError { Connect, Timeout, Closed, Protocol, kCount };
enum class Direction { ClientToDownstream, DownstreamToClient, kCount };
enum class PrdrOutcome { Accepted, Rejected, Tempfailed, kCount };
// A recipient's profile lookup: answered from the cache, by the service, or not usable.
enum class ProfileLookupResult { Hit, Miss, Error, kCount };

using Counter = std::atomic<std::uint64_t>;

struct WorkerCounters {
  Counter connections_open{0};         // gauge
  Counter connections_total{0};
  Counter connections_refused{0};      // over max_connections, or while draining
  std::array<Counter, static_cast<int>(TxOutcome::kCount)> transactions{};
  std::array<Counter, static_cast<int>(DownstreamError::kCount)> downstream_errors{};
  std::array<Counter, static_cast<int>(Direction::kCount)> bytes{};
  std::array<Counter, 6> replies_by_class{};  // index = first digit (2..5 used)
  Counter recipients_deferred{0};  // split: a recipient of a second profile got 451/452 4.5.3
  Counter prdr_transactions{0};    // messages answered with per-recipient replies
  Counter downstream_reused{0};    // pool.max_sessions: a session's connection kept for the next client
  Counter pool_idle{0};            // gauge: pooled connections greeted and waiting for a client
  Counter pool_leased{0};          // gauge: pooled connections lent to a session (max_sessions > 1)
  std::array<Counter, static_cast<int>(PrdrOutcome::kCount)> prdr_recipients{};
  std::array<Counter, static_cast<int>(ProfileLookupResult::kCount)> profile_lookups{};  // one per RCPT looked up

  void add(Counter& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
  void sub(Counter& c, std::uint64_t n = 1) { c.fetch_sub(n, std::memory_order_relaxed); }
};

class Metrics {
 public:
  WorkerCounters& add_worker();  // called at start-up, once per worker
  // Prometheus text exposition format 0.0.4, every family with # HELP and # TYPE.
  std::string render() const;

  // Appends more families to every render(), after dotgate's own (e.g. a policy's counters).
  // The renderer runs on the admin thread at scrape time and must write complete families, each
  // with # HELP and # TYPE, names prefixed "dotgate_"; it reads its own counters the way render()
  // reads WorkerCounters (relaxed atomics). Registered at start-up; never removed.
  using Renderer = std::function<void(std::string& out)>;
  void add_renderer(Renderer renderer);

 private:
  mutable std::mutex mutex_;  // guards the vectors only (start-up and scrape), never the counters
  std::vector<std::unique_ptr<WorkerCounters>> workers_;
  std::vector<Renderer> renderers_;
};

}  // namespace dotgate::metrics
