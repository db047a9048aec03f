// test/bench/greylist_bench.cc — greylisting decisions per second against a real store.
//
// Built and run by test/bench/greylist.sh (not a meson target). One loop, as one dotgate worker
// has; `--inflight` policy instances (sessions) each ask one RCPT decision at a time and ask the
// next as soon as theirs is answered, so that many decisions are in flight at once (with Redis
// they are pipelined on the loop's one connection). Three rounds over `--triplets` distinct
// triplets, each reported as decisions/s:
//   new     every triplet unknown: 2 gets (triplet, network count) + 1 set
//   passed  the retry after the delay: 2 gets + 1 set + 1 increment
//   known   already passed (the steady state of a real MX): 2 gets, no write
// Usage: greylist_bench --backend lmdb|redis [--path DIR] [--port N] [--triplets N] [--inflight N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <uv.h>

#include "lib/config/config.h"
#include "lib/log/log.h"
#include "policies/greylist.h"
#include "policies/registry.h"

using namespace dotgate;

namespace {

struct Run {
  uv_loop_t* loop;
  std::vector<std::unique_ptr<policy::GreylistPolicy>> sessions;
  int triplets = 0;
  int next = 0;
  int answered = 0;
  int passed = 0;
  int errors = 0;  // store errors: passed by on_error, and no measure of the store
  void ask(policy::GreylistPolicy& p) {
    if (next >= triplets) return;
    int i = next++;
    policy::Envelope env;
    env.client_address = "192.0.2." + std::to_string(1 + i % 200) + ":25";
    env.helo = "mx.bench.example";
    env.mail_from = "sender" + std::to_string(i / 200) + "@bench.example";
    p.rcpt(env, "rcpt" + std::to_string(i) + "@bench.example", [this, &p](policy::Verdict v) {
      ++answered;
      if (v.detail == "store_error") ++errors;
      else if (v.passed()) ++passed;
      ask(p);
    });
  }
  double round(const char* name) {
    next = answered = passed = errors = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (auto& s : sessions) ask(*s);
    while (answered < triplets) uv_run(loop, UV_RUN_ONCE);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double rate = triplets / secs;
    std::printf("  %-7s %8d decisions in %7.3f s: %9.0f decisions/s (%d passed, %d store errors)\n", name, triplets, secs,
                rate, passed, errors);
    return errors > 0 ? 0 : rate;  // a run with errors measured nothing
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string backend = "lmdb", path = "/tmp/dotgate-greylist-bench";
  int port = 6379, triplets = 20000, inflight = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--backend") backend = v;
    else if (k == "--path") path = v;
    else if (k == "--port") port = std::atoi(v.c_str());
    else if (k == "--triplets") triplets = std::atoi(v.c_str());
    else if (k == "--inflight") inflight = std::atoi(v.c_str());
  }
  log::setup(config::LogFormat::Text, "error");
  config::Config config;
  if (backend == "redis") {
    config.store.backend = config::StoreConfig::Backend::Redis;
    config.store.redis.port = port;
    config.store.redis.prefix = "bench:";
  } else {
    config.store.lmdb.path = path;
  }
  nlohmann::json j = {{"type", "greylist"}, {"delay", 1}, {"window", 3600}, {"builtin_exemptions", false}};
  policy::PolicyConfigReader reader(j, "policies[0]");
  reader.string("type", "");
  auto gc = policy::read_greylist_config(reader, config);
  uv_loop_t loop;
  uv_loop_init(&loop);
  Run run{&loop, {}, triplets};
  for (int i = 0; i < inflight; ++i) run.sessions.push_back(std::make_unique<policy::GreylistPolicy>(gc, &loop));
  std::printf("%s: %d triplets, %d decisions in flight, one loop\n", backend.c_str(), triplets, inflight);
  // Between rounds the loop keeps running (the writes of the last round complete), as it would.
  auto idle = [&](int ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      uv_run(&loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  run.round("new");
  idle(1200);  // past the 1 s delay
  run.round("passed");
  idle(200);
  double known = run.round("known");
  std::printf("RESULT %s known %.0f\n", backend.c_str(), known);
  run.sessions.clear();
  net::LoopShare::release_lingering();
  gc.reset();
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0) {}
  uv_loop_close(&loop);
  return 0;
}
