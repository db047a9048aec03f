// test/unit/metrics/rewrite_metrics_test.cc — lib/metrics/rewrite_metrics: one counter per rule
// name for the process, striped per thread and summed at render, in the Prometheus text format.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "lib/metrics/rewrite_metrics.h"

using dotgate::metrics::render_rewrite_metrics;
using dotgate::metrics::rewrite_counter;

TEST_CASE("rewrite metrics: the same counter per name, summed over threads, rendered") {
  auto& a = rewrite_counter("test-rule-a");
  CHECK(&a == &rewrite_counter("test-rule-a"));  // a reload finds the counter it had
  auto& b = rewrite_counter("test-rule-b");
  std::vector<std::thread> threads;
  for (int t = 0; t < 20; ++t)  // more threads than stripes: they share, and nothing is lost
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) a.add();
    });
  for (auto& t : threads) t.join();
  b.add();
  CHECK(a.value() == 20000);
  CHECK(b.value() == 1);
  std::string out;
  render_rewrite_metrics(out);
  CHECK(out.rfind("# HELP dotgate_reply_rewrites_total ", 0) == 0);
  CHECK(out.find("# TYPE dotgate_reply_rewrites_total counter\n") != std::string::npos);
  CHECK(out.find("dotgate_reply_rewrites_total{rule=\"test-rule-a\"} 20000\n") != std::string::npos);
  CHECK(out.find("dotgate_reply_rewrites_total{rule=\"test-rule-b\"} 1\n") != std::string::npos);
}
