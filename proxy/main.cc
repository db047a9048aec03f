// proxy/main.cc — dotgate's entry point: command line, config, workers, admin HTTP, signals.
//
// The main thread runs its own loop with the admin server and the signal handlers; each worker
// runs a loop of its own (proxy/worker.h). SIGHUP reloads the config file for new sessions (a bad
// file is refused with a log line, the old config stays). SIGTERM/SIGINT drain: listeners close,
// /readyz turns 503, sessions may finish for drain_grace, then the rest get 421 4.3.2 and the
// process exits 0. Listeners, workers, the admin address and "user" are read at start only.
// Under systemd (Type=notify) the service manager hears READY=1 once every listener is bound and
// the workers run, RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 when the drain
// starts (sd_notify: a no-op without $NOTIFY_SOCKET). With "user" set, the process becomes that
// user after binding and before serving (proxy/privileges.h), or exits 1.
// The maintenance flag (rewrite.maintenance) is taken from the config at start and whenever a
// reload changes that key, and set in between by POST /maintenance/on|off on the admin port, so that
// an unrelated reload never ends a maintenance an admin started by hand.
// At start the open files soft limit is raised to the hard one, and a limit below what
// smtp.max_connections needs is a warning at start, on reload and from --check-config
// (proxy/open_files_limit.h).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <systemd/sd-daemon.h>
#include <uv.h>

#include "lib/config/config.h"
#include "lib/config/trade_notes.h"
#include "lib/http/admin_server.h"
#include "lib/log/log.h"
#include "lib/metrics/proxy_protocol_metrics.h"
#include "lib/metrics/rewrite_metrics.h"
#include "policies/policy_metrics.h"
#include "proxy/downstream_probe.h"
#include "proxy/open_files_limit.h"
#include "proxy/privileges.h"
#include "proxy/runtime.h"
#include "proxy/worker.h"

namespace dotgate::proxy {
namespace {

struct Options {
  std::string config_path;
  std::optional<std::string> listen, downstream, admin, log_format;
  std::optional<int> workers;
  bool check_config = false;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: dotgate --config FILE [--listen ADDR:PORT] [--downstream ADDR:PORT]\n"
               "               [--admin ADDR:PORT] [--workers N] [--log-format text|json] [--check-config]\n");
}

bool parse_args(int argc, char** argv, Options& o, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        error = a + ": missing value";
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--config") {
      if (!value(o.config_path)) return false;
    } else if (a == "--listen") {
      if (!value(v)) return false;
      o.listen = v;
    } else if (a == "--downstream") {
      if (!value(v)) return false;
      o.downstream = v;
    } else if (a == "--admin") {
      if (!value(v)) return false;
      o.admin = v;
    } else if (a == "--log-format") {
      if (!value(v)) return false;
      if (v != "text" && v != "json") {
        error = "--log-format: expected text or json";
        return false;
      }
      o.log_format = v;
    } else if (a == "--workers") {
      if (!value(v)) return false;
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end || n < 0 || n > 256) {
        error = "--workers: expected an integer in 0..256";
        return false;
      }
      o.workers = static_cast<int>(n);
    } else if (a == "--check-config") {
      o.check_config = true;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else {
      error = "unknown argument " + a;
      return false;
    }
  }
  if (o.config_path.empty()) {
    error = "--config FILE is required";
    return false;
  }
  return true;
}

int worker_count(const config::Config& c) {
  return c.workers > 0 ? c.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// The file, with the command line's overrides on top. Throws config::ConfigError.
config::Config load(const Options& o) {
  config::Config c = config::load_config_file(o.config_path);
  if (o.listen) c.listeners = {config::parse_endpoint(*o.listen, "--listen")};
  if (o.downstream) c.downstream.endpoint = config::parse_endpoint(*o.downstream, "--downstream");
  if (o.admin) {
    c.admin = config::parse_endpoint(*o.admin, "--admin");
    c.admin_enabled = true;
  }
  if (o.workers) c.workers = *o.workers;
  if (o.log_format) c.log_format = *o.log_format == "json" ? config::LogFormat::Json : config::LogFormat::Text;
  return c;
}

struct Daemon {
  Options options;
  Shared shared;
  uv_loop_t* loop = uv_default_loop();
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<http::AdminServer> admin;
  std::unique_ptr<DownstreamProbe> probe;
  uv_signal_t sigterm{}, sigint{}, sighup{};
  uv_timer_t drain_timer{};
  bool draining = false;
  bool shutdown_sent = false;
  std::uint64_t drain_started = 0;
  // Read by the admin thread's /metrics (the same loop as reload(): plain counters would do;
  // atomics say so).
  std::atomic<std::uint64_t> reloads_ok{0}, reloads_refused{0};

  void reload() {
    // systemd's reload protocol: RELOADING=1 with the monotonic time the reload began, then
    // READY=1 whatever the outcome (a refused file leaves the old config serving: still ready).
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", static_cast<unsigned long long>(uv_hrtime() / 1000));
    try {
      auto rt = Runtime::build(load(options), &shared.maintenance);
      bool was = shared.runtime()->config.rewrite.maintenance;
      shared.publish(rt);
      reloads_ok.fetch_add(1);
      if (rt->config.rewrite.maintenance != was) set_maintenance(rt->config.rewrite.maintenance, "configuration");
      log::info("configuration reloaded", {{"file", options.config_path}, {"policies", rt->policies->names()}});
      // Workers are read at start only: the running ones are what the new max_connections shares.
      std::string fds = open_files_warning(rt->config, static_cast<int>(workers.size()), current_open_files_limit());
      if (!fds.empty()) log::warn(fds);
      sd_notify(0, "READY=1\nSTATUS=serving (configuration reloaded)");
    } catch (const config::ConfigError& e) {
      reloads_refused.fetch_add(1);
      log::error("configuration reload refused, keeping the running one", {{"file", options.config_path}, {"error", e.what()}});
      sd_notify(0, "READY=1\nSTATUS=serving (reload refused, see the log)");
    }
  }

  // dotgate_draining, dotgate_downstream_up, dotgate_config_reloads_total: the state an
  // operator's alerts need that no worker counts (deploy/prometheus/dotgate-rules.yml).
  void render_process_metrics(std::string& out) const {
    out += "# HELP dotgate_draining 1 while draining after SIGTERM (listeners closed, /readyz 503)\n"
           "# TYPE dotgate_draining gauge\n";
    out += "dotgate_draining " + std::to_string(shared.draining.load() ? 1 : 0) + "\n";
    out += "# HELP dotgate_downstream_up 1 when the last connection attempt to the downstream MTA succeeded\n"
           "# TYPE dotgate_downstream_up gauge\n";
    out += "dotgate_downstream_up " + std::to_string(shared.downstream_reachable.load() ? 1 : 0) + "\n";
    out += "# HELP dotgate_config_reloads_total SIGHUP reloads, applied or refused (the old config kept)\n"
           "# TYPE dotgate_config_reloads_total counter\n";
    out += "dotgate_config_reloads_total{result=\"applied\"} " + std::to_string(reloads_ok.load()) + "\n";
    out += "dotgate_config_reloads_total{result=\"refused\"} " + std::to_string(reloads_refused.load()) + "\n";
  }

  void set_maintenance(bool on, std::string_view by) {
    bool before = shared.maintenance.exchange(on);
    log::info(on ? "maintenance on: 5xx replies to RCPT are sent as 4xx" : "maintenance off",
              {{"by", by}, {"was", before ? "on" : "off"}});
  }

  // /maintenance (GET: "on" or "off") and POST /maintenance/on, /maintenance/off.
  std::vector<http::AdminRoute> maintenance_routes() {
    auto state = [this] { return http::AdminAnswer{200, shared.maintenance.load() ? "on\n" : "off\n"}; };
    auto setter = [this, state](bool on) {
      return [this, state, on] {
        if (!shared.runtime()->config.rewrite.maintenance_admin)
          return http::AdminAnswer{403, "the maintenance flag is not settable here (rewrite.maintenance_admin is false)\n"};
        set_maintenance(on, "admin");
        return state();
      };
    };
    return {{"GET", "/maintenance", state}, {"POST", "/maintenance/on", setter(true)},
            {"POST", "/maintenance/off", setter(false)}};
  }

  void drain() {
    if (draining) return;
    draining = true;
    shared.draining.store(true);
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
    log::info("draining", {{"grace_ms", shared.runtime()->config.drain_grace.count()}});
    for (auto& w : workers) w->request_drain();
    drain_started = uv_now(loop);
    drain_timer.data = this;
    uv_timer_start(&drain_timer, [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->drain_tick(); }, 50, 50);
  }

  // Every 50 ms while draining: shut the workers down once sessions are gone or grace is over,
  // then close the main loop's handles once every worker loop has ended.
  void drain_tick() {
    std::size_t sessions = 0;
    for (auto& w : workers) sessions += w->session_count();
    auto grace = static_cast<std::uint64_t>(shared.runtime()->config.drain_grace.count());
    if (!shutdown_sent && (sessions == 0 || uv_now(loop) - drain_started >= grace)) {
      shutdown_sent = true;
      if (sessions) log::info("drain grace over", {{"sessions", sessions}});
      for (auto& w : workers) w->request_shutdown();
    }
    if (!shutdown_sent) return;
    for (auto& w : workers)
      if (!w->finished()) return;
    uv_timer_stop(&drain_timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sighup), nullptr);
    if (admin) admin->close([] {});
    probe->close([] {});
  }
};

int run(int argc, char** argv) {
  auto d = std::make_unique<Daemon>();
  std::string error;
  if (!parse_args(argc, argv, d->options, error)) {
    std::fprintf(stderr, "dotgate: %s\n", error.c_str());
    usage(stderr);
    return 2;
  }
  std::shared_ptr<const Runtime> runtime;
  try {
    runtime = Runtime::build(load(d->options), &d->shared.maintenance);
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "dotgate: %s: %s\n", d->options.config_path.c_str(), e.what());
    return 1;
  }
  // "user" must exist before anything starts: --check-config says so too.
  Account account;
  if (!runtime->config.user.empty()) {
    std::string why = resolve_account(runtime->config.user, runtime->config.group, account);
    if (!why.empty()) {
      std::fprintf(stderr, "dotgate: %s: %s\n", d->options.config_path.c_str(), why.c_str());
      return 1;
    }
  }
  // Before any socket: the soft limit up to the hard one (open_files_limit.h). --check-config
  // does the same, so that what it says is what a start under the same limits would find.
  OpenFilesLimit fd_limit = raise_open_files_limit();
  std::string fd_warning = open_files_warning(runtime->config, worker_count(runtime->config), fd_limit.soft);
  const config::Config& cfg = runtime->config;
  const int n = worker_count(cfg);
  // What the speed settings in use trade (config::trade_notes): said before serving, not hidden.
  std::vector<std::string> notes = config::trade_notes(cfg, n);
  if (d->options.check_config) {
    // A warning, not an error: the file is valid, and the limit belongs to how it is started.
    if (!fd_warning.empty()) std::fprintf(stderr, "dotgate: warning: %s\n", fd_warning.c_str());
    std::printf("dotgate: %s: configuration OK\n", d->options.config_path.c_str());
    for (const auto& note : notes) std::printf("dotgate: trade-off: %s\n", note.c_str());
    return 0;
  }
  if (!log::setup(cfg.log_format, cfg.log_level)) {
    std::fprintf(stderr, "dotgate: log.level: unknown level %s\n", cfg.log_level.c_str());
    return 1;
  }
  if (fd_limit.error != 0)
    log::warn("cannot raise the open files limit", {{"soft", fd_limit.soft}, {"hard", fd_limit.hard}, {"error", std::strerror(fd_limit.error)}});
  else if (fd_limit.soft != fd_limit.soft_before)
    log::info("open files limit raised", {{"from", fd_limit.soft_before}, {"to", fd_limit.soft}});
  if (!fd_warning.empty()) log::warn(fd_warning);
  d->shared.publish(runtime);
  d->shared.maintenance.store(cfg.rewrite.maintenance);
  std::signal(SIGPIPE, SIG_IGN);  // a peer that vanishes mid-write is an error code, not a death

  d->shared.metrics.add_renderer(&policy::render_policy_metrics);
  d->shared.metrics.add_renderer([dp = d.get()](std::string& out) { dp->render_process_metrics(out); });
  d->shared.metrics.add_renderer(&metrics::render_rewrite_metrics);
  d->shared.metrics.add_renderer(&metrics::render_proxy_protocol_metrics);
  d->shared.metrics.add_renderer([dp = d.get()](std::string& out) {
    out += "# HELP dotgate_maintenance 1 while the maintenance flag is on (RCPT 5xx sent as 4xx).\n"
           "# TYPE dotgate_maintenance gauge\n"
           "dotgate_maintenance " + std::string(dp->shared.maintenance.load() ? "1" : "0") + "\n";
  });
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>(d->shared, i);
    if (w->open_listeners(cfg.listeners, error) != 0) {
      log::error("cannot listen", {{"error", error}});
      std::_Exit(1);  // nothing to drain yet; handles on unstarted loops need no ceremony
    }
    d->workers.push_back(std::move(w));
  }
  if (cfg.admin_enabled) {
    Daemon* dp = d.get();
    d->admin = std::make_unique<http::AdminServer>(
        d->loop, http::AdminHandlers{
                     [dp] { return !dp->shared.draining.load() && dp->shared.downstream_reachable.load(); },
                     [dp] { return dp->shared.metrics.render(); },
                     dp->maintenance_routes()});
    int rc = d->admin->listen(cfg.admin);
    if (rc != 0) {
      log::error("cannot listen for admin HTTP", {{"address", cfg.admin.to_string()}, {"error", uv_strerror(rc)}});
      std::_Exit(1);
    }
  }
  // Everything privileged is done (port 25, the admin port): shed root before the first client.
  if (!cfg.user.empty()) {
    std::string why = drop_privileges(account);
    if (!why.empty()) {
      log::error("cannot drop privileges, not serving", {{"user", account.user}, {"group", account.group}, {"error", why}});
      std::_Exit(1);  // as for a bind error: nothing runs yet
    }
    log::info("privileges dropped", {{"user", account.user}, {"uid", account.uid}, {"group", account.group}, {"gid", account.gid}});
  }
  uv_timer_init(d->loop, &d->drain_timer);
  uv_signal_init(d->loop, &d->sigterm);
  uv_signal_init(d->loop, &d->sigint);
  uv_signal_init(d->loop, &d->sighup);
  d->sigterm.data = d->sigint.data = d->sighup.data = d.get();
  uv_signal_start(&d->sigterm, [](uv_signal_t* s, int) { static_cast<Daemon*>(s->data)->drain(); }, SIGTERM);
  uv_signal_start(&d->sigint, [](uv_signal_t* s, int) { static_cast<Daemon*>(s->data)->drain(); }, SIGINT);
  uv_signal_start(&d->sighup, [](uv_signal_t* s, int) { static_cast<Daemon*>(s->data)->reload(); }, SIGHUP);

  // Every 2 s while the downstream is unreachable: /readyz recovers without traffic.
  d->probe = std::make_unique<DownstreamProbe>(d->loop, d->shared, 2000);
  d->probe->start();
  for (auto& w : d->workers) w->start();
  nlohmann::json listen = nlohmann::json::array();
  for (const auto& ep : cfg.listeners) listen.push_back(ep.to_string());
  log::info("dotgate started", {{"listen", listen},
                                {"downstream", cfg.downstream.endpoint.to_string()},
                                {"admin", cfg.admin_enabled ? cfg.admin.to_string() : "off"},
                                {"workers", n},
                                {"policies", runtime->policies->names()}});
  for (const auto& note : notes) log::info("trade-off", {{"setting", note.substr(0, note.find(':'))}, {"trade", note}});
  sd_notify(0, "READY=1\nSTATUS=serving");
  uv_run(d->loop, UV_RUN_DEFAULT);
  for (auto& w : d->workers) w->join();
  d->workers.clear();
  d->admin.reset();
  d->probe.reset();
  uv_loop_close(d->loop);
  log::info("dotgate stopped");
  return 0;
}

}  // namespace
}  // namespace dotgate::proxy

int main(int argc, char** argv) { return dotgate::proxy::run(argc, argv); }
