// proxy/worker.cc — see worker.h.
#include "proxy/worker.h"

#include <pthread.h>

#include "lib/log/log.h"
#include "lib/net/loop_share.h"

namespace dotgate::proxy {

Worker::Worker(Shared& shared, int index)
    : shared_(shared), index_(index), counters_(shared.metrics.add_worker()) {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &async_, &Worker::on_async);
  async_.data = this;
  busy_poll_ = std::make_unique<net::BusyPoll>(&loop_, shared.runtime()->config.busy_poll_us);
  read_buffer_.busy_poll = busy_poll_.get();
  pool_ = std::make_unique<DownstreamPool>(&loop_, connector_, &counters_, [this] { maybe_finish(); });
}

Worker::~Worker() {
  join();
  uv_loop_close(&loop_);
}

int Worker::open_listeners(const std::vector<config::Endpoint>& endpoints, std::string& error) {
  for (const auto& ep : endpoints) {
    endpoints_.push_back(ep);  // listeners are read at start only: what each one is stays here
    std::size_t index = endpoints_.size() - 1;
    auto l = std::make_unique<net::Listener>(&loop_, [this, index](uv_stream_t* server) {
      on_connection(server, endpoints_[index]);
    });
    int rc = l->open(ep, error);
    ++listeners_open_;  // the handle is initialised either way and must be closed
    listeners_.push_back(std::move(l));
    if (rc != 0) return rc;
  }
  return 0;
}

void Worker::start() {
  pool_->fill(shared_.runtime());  // before the thread: the loop is not running yet
  thread_ = std::thread([this] {
    // "dotgate-w0", ...: top -H, perf and test/bench/relay_cores.sh tell the workers apart by it
    // (15 characters at most, the kernel's limit).
    std::string name = "dotgate-w" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    uv_run(&loop_, UV_RUN_DEFAULT);
    finished_.store(true);
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::request_drain() {
  drain_requested_.store(true);
  uv_async_send(&async_);
}

void Worker::request_shutdown() {
  shutdown_requested_.store(true);
  uv_async_send(&async_);
}

void Worker::on_async(uv_async_t* async) {
  auto* w = static_cast<Worker*>(async->data);
  if (w->drain_requested_.load() && !w->draining_) {
    w->draining_ = true;
    w->close_listeners();
    w->pool_->drain();  // no new sessions: pooled connections would only hold MTA processes
  }
  if (w->shutdown_requested_.load() && !w->shutting_down_) {
    w->shutting_down_ = true;
    w->draining_ = true;
    // Idle keep-alive connections (webhook and rspamd clients, the state store's) must not keep
    // this loop running.
    net::LoopShare::release_lingering();
    w->close_listeners();
    w->pool_->shut_down();
    w->lookup_.reset();  // its client closes once the sessions still holding it have ended
    // Copy: shut_down() may close a session at once, which erases it from the set.
    std::vector<Session*> left(w->sessions_.begin(), w->sessions_.end());
    for (Session* s : left) s->shut_down();
    w->maybe_finish();
  }
}

void Worker::close_listeners() {
  for (auto& l : listeners_) {
    l->close([this] {
      --listeners_open_;
      maybe_finish();
    });
  }
}

void Worker::on_connection(uv_stream_t* server, const config::Endpoint& listener) {
  auto runtime = shared_.runtime();
  auto* session = new Session(*this, runtime);
  sessions_.insert(session);
  session_count_.store(sessions_.size(), std::memory_order_relaxed);
  std::size_t open = shared_.open_connections.fetch_add(1) + 1;
  if (draining_ || shared_.draining.load()) {
    session->refuse(server, listener, replies::kShuttingDown);
  } else if (open > runtime->config.smtp.max_connections) {
    session->refuse(server, listener, replies::kTooManyConnections);
  } else {
    pool_->fill(runtime);  // follows a reload: the pool connects where new sessions go
    busy_poll_->set_budget(runtime->config.busy_poll_us);
    session->start(server, listener);
  }
}

std::shared_ptr<ProfileLookup> Worker::profile_lookup(const config::Config& config) {
  if (!config.profile_lookup.enabled || shutting_down_) return nullptr;
  // Kept across reloads that leave the lookup alone: the cache survives a SIGHUP.
  if (!lookup_ || !lookup_->serves(config)) lookup_ = std::make_shared<ProfileLookup>(&loop_, config);
  return lookup_;
}

void Worker::session_closed(Session* session) {
  sessions_.erase(session);
  session_count_.store(sessions_.size(), std::memory_order_relaxed);
  shared_.open_connections.fetch_sub(1);
  maybe_finish();
}

void Worker::maybe_finish() {
  if (!shutting_down_ || async_closed_ || !sessions_.empty() || listeners_open_ > 0 || !pool_->finished()) return;
  async_closed_ = true;
  read_buffer_.busy_poll = nullptr;
  busy_poll_->close(nullptr, nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);  // the last handle: uv_run returns
}

}  // namespace dotgate::proxy
