// proxy/worker.h — one libuv loop on one thread: its listeners (SO_REUSEPORT) and its sessions.
//
// Made and opened by main() on the main thread (so a bind error stops start-up), then run on its
// own thread. The main thread talks to it only through request_*() (an atomic flag and a
// uv_async). The worker owns its listeners and sessions; when asked to shut down it closes the
// listeners, sends 421 4.3.2 to the sessions left, closes its downstream pool (drain empties it
// already), lets go of its profile lookup (its client closes once the last session holding it is
// gone) and its async handle, and its loop ends.
// Its thread is named "dotgate-wN" (N: its index), so per-thread tools can tell the workers apart.
// With busy_poll_us set it also owns a net::BusyPoll (an idle handle, closed with the async one).
// No shared mutable state with other workers but the atomics in Shared.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <uv.h>

#include "lib/net/connector.h"
#include "lib/net/listener.h"
#include "proxy/downstream_pool.h"
#include "proxy/profile_lookup.h"
#include "proxy/runtime.h"
#include "proxy/session.h"

namespace dotgate::proxy {

class Worker final : public SessionHost {
 public:
  Worker(Shared& shared, int index);
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Main thread, before start(). Returns 0 or a negative error with `error` set.
  int open_listeners(const std::vector<config::Endpoint>& endpoints, std::string& error);
  void start();
  // Thread-safe requests.
  void request_drain();     // stop accepting; sessions go on
  void request_shutdown();  // 421 4.3.2 to every session left, then the loop ends
  std::size_t session_count() const { return session_count_.load(std::memory_order_relaxed); }
  bool finished() const { return finished_.load(); }
  void join();

  // SessionHost
  uv_loop_t* loop() override { return &loop_; }
  net::ReadBuffer* read_buffer() override { return &read_buffer_; }
  net::Connector& connector() override { return connector_; }
  metrics::WorkerCounters& counters() override { return counters_; }
  Shared& shared() override { return shared_; }
  DownstreamPool* downstream_pool() override { return pool_.get(); }
  std::shared_ptr<ProfileLookup> profile_lookup(const config::Config& config) override;
  void session_closed(Session* session) override;

 private:
  void on_connection(uv_stream_t* server, const config::Endpoint& listener);
  static void on_async(uv_async_t* async);
  void close_listeners();
  void maybe_finish();

  Shared& shared_;
  int index_;
  uv_loop_t loop_{};
  uv_async_t async_{};
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> shutdown_requested_{false};
  bool draining_ = false;
  bool shutting_down_ = false;
  bool async_closed_ = false;
  std::size_t listeners_open_ = 0;
  std::vector<std::unique_ptr<net::Listener>> listeners_;
  std::vector<config::Endpoint> endpoints_;  // what each listener is (its TLS mode), by index
  net::ReadBuffer read_buffer_;
  net::TcpConnector connector_{&loop_, &read_buffer_};  // the downstream connections of this loop
  std::unique_ptr<net::BusyPoll> busy_poll_;  // polls after reads for worker.busy_poll µs
  std::unique_ptr<DownstreamPool> pool_;  // made once the loop is initialised
  // The profile lookup (cache, connections) for the current config, made on first use; replaced
  // when a reload changes its settings; dropped at shutdown (sessions still holding it keep it).
  std::shared_ptr<ProfileLookup> lookup_;
  metrics::WorkerCounters& counters_;
  std::unordered_set<Session*> sessions_;
  std::atomic<std::size_t> session_count_{0};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace dotgate::proxy
