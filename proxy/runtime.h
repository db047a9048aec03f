// proxy/runtime.h — what every session is made from, and the process-wide state workers share.
//
// A Runtime is one loaded configuration with its policies: immutable, shared by the sessions
// started under it. SIGHUP builds a new one and publishes it in Shared; running sessions keep the
// one they started with (their shared_ptr). Shared lives in main() for the whole process; the
// only mutable things in it are atomics and the runtime pointer (under its mutex, read once per
// accepted connection, never per byte; the maintenance flag once per RCPT reply).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include <uv.h>

#include "lib/config/config.h"
#include "lib/metrics/metrics.h"
#include "lib/tls/tls_context.h"
#include "policies/registry.h"
#include "proxy/reply_rewriter.h"

namespace dotgate::proxy {

struct Runtime {
  config::Config config;
  std::shared_ptr<const policy::PolicySet> policies;
  sockaddr_storage downstream_address{};
  // dotgate's certificate for its TLS listeners (config `tls`), read at start and on every SIGHUP:
  // a session keeps the one it started with. Null when `tls` is not configured.
  std::shared_ptr<const tls::TlsContext> server_tls;
  // towards the MTA (downstream.starttls, downstream.tls); null when downstream.starttls is off.
  std::shared_ptr<const tls::TlsContext> downstream_tls;
  ReplyRewriter replies;  // config.rewrite's rules; every downstream reply passes it

  // Throws config::ConfigError. `maintenance`: Shared::maintenance, which the rewriter reads for
  // each RCPT reply (null: never in maintenance).
  static std::shared_ptr<const Runtime> build(config::Config config, const std::atomic<bool>* maintenance = nullptr);
};

struct Shared {
  std::atomic<std::size_t> open_connections{0};  // all workers: checked against smtp.max_connections
  std::atomic<bool> draining{false};
  std::atomic<bool> downstream_reachable{true};  // last downstream connect attempt succeeded
  // Maintenance (rewrite.maintenance): a downstream 5xx to RCPT reaches the client as 4xx. Set
  // from the config at start and when a reload changes the key; by the admin port in between.
  std::atomic<bool> maintenance{false};
  metrics::Metrics metrics;

  std::shared_ptr<const Runtime> runtime() const {
    std::lock_guard lock(mutex_);
    return runtime_;
  }
  void publish(std::shared_ptr<const Runtime> runtime) {
    std::lock_guard lock(mutex_);
    runtime_ = std::move(runtime);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Runtime> runtime_;
};

}  // namespace dotgate::proxy
