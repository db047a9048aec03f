// test/unit/metrics/metrics_test.cc — lib/metrics: render() sums the worker blocks into exact
// Prometheus 0.0.4 lines, every family declared once with # HELP and # TYPE, extra renderers last.
#include <doctest/doctest.h>

#include <set>
#include <sstream>
#include <string>

#include "lib/metrics/metrics.h"

using namespace dotgate::metrics;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

constexpr int idx(auto e) { return static_cast<int>(e); }

}  // namespace

TEST_CASE("metrics: render sums two workers") {
  Metrics m;
  WorkerCounters& a = m.add_worker();
  WorkerCounters& b = m.add_worker();
  a.add(a.connections_open, 3);
  a.sub(a.connections_open);
  b.add(b.connections_open, 4);
  a.add(a.connections_total, 10);
  b.add(b.connections_total, 5);
  b.add(b.connections_refused, 2);
  a.add(a.transactions[idx(TxOutcome::Accepted)], 7);
  b.add(b.transactions[idx(TxOutcome::Accepted)], 1);
  b.add(b.transactions[idx(TxOutcome::Aborted)]);
  a.add(a.downstream_errors[idx(DownstreamError::Timeout)], 2);
  b.add(b.downstream_errors[idx(DownstreamError::Protocol)]);
  a.add(a.bytes[idx(Direction::ClientToDownstream)], 1000);
  b.add(b.bytes[idx(Direction::ClientToDownstream)], 234);
  b.add(b.bytes[idx(Direction::DownstreamToClient)], 99);
  a.add(a.replies_by_class[2], 20);
  b.add(b.replies_by_class[2], 2);
  b.add(b.replies_by_class[4], 3);
  a.add(a.replies_by_class[5]);
  a.add(a.profile_lookups[idx(ProfileLookupResult::Hit)], 5);
  b.add(b.profile_lookups[idx(ProfileLookupResult::Hit)], 2);
  b.add(b.profile_lookups[idx(ProfileLookupResult::Miss)], 3);
  a.add(a.profile_lookups[idx(ProfileLookupResult::Error)]);
  a.pool_idle.store(2);  // gauges: each worker's pool, summed
  b.pool_idle.store(1);
  b.pool_leased.store(4);

  std::string text = m.render();
  for (const char* line : {
           "# TYPE dotgate_connections_open gauge",
           "dotgate_connections_open 6",
           "# TYPE dotgate_connections_total counter",
           "dotgate_connections_total 15",
           "# TYPE dotgate_connections_refused_total counter",
           "dotgate_connections_refused_total 2",
           "# TYPE dotgate_transactions_total counter",
           "dotgate_transactions_total{outcome=\"accepted\"} 8",
           "dotgate_transactions_total{outcome=\"rejected\"} 0",
           "dotgate_transactions_total{outcome=\"tempfailed\"} 0",
           "dotgate_transactions_total{outcome=\"aborted\"} 1",
           "# TYPE dotgate_downstream_errors_total counter",
           "dotgate_downstream_errors_total{reason=\"connect\"} 0",
           "dotgate_downstream_errors_total{reason=\"timeout\"} 2",
           "dotgate_downstream_errors_total{reason=\"closed\"} 0",
           "dotgate_downstream_errors_total{reason=\"protocol\"} 1",
           "# TYPE dotgate_bytes_relayed_total counter",
           "dotgate_bytes_relayed_total{direction=\"client_to_downstream\"} 1234",
           "dotgate_bytes_relayed_total{direction=\"downstream_to_client\"} 99",
           "# TYPE dotgate_replies_total counter",
           "dotgate_replies_total{class=\"2xx\"} 22",
           "dotgate_replies_total{class=\"3xx\"} 0",
           "dotgate_replies_total{class=\"4xx\"} 3",
           "dotgate_replies_total{class=\"5xx\"} 1",
           "# TYPE dotgate_profile_lookups_total counter",
           "dotgate_profile_lookups_total{result=\"hit\"} 7",
           "dotgate_profile_lookups_total{result=\"miss\"} 3",
           "dotgate_profile_lookups_total{result=\"error\"} 1",
           "# TYPE dotgate_downstream_pool_connections gauge",
           "dotgate_downstream_pool_connections{state=\"idle\"} 3",
           "dotgate_downstream_pool_connections{state=\"leased\"} 4",
       }) {
    CAPTURE(line);
    CHECK(has_line(text, line));
  }
  CHECK(text.back() == '\n');
}

TEST_CASE("metrics: every sample belongs to a family declared before it, with HELP and TYPE") {
  Metrics m;
  m.add_worker();
  m.add_renderer([](std::string& out) {
    out += "# HELP dotgate_policy_greylist_deferred_total Deferred by greylisting.\n";
    out += "# TYPE dotgate_policy_greylist_deferred_total counter\n";
    out += "dotgate_policy_greylist_deferred_total 4\n";
  });
  std::string text = m.render();
  std::set<std::string> helped, typed;
  std::istringstream in(text);
  std::string line;
  int samples = 0;
  while (std::getline(in, line)) {
    CAPTURE(line);
    if (line.rfind("# HELP ", 0) == 0) {
      auto name = line.substr(7, line.find(' ', 7) - 7);
      CHECK(helped.insert(name).second);  // declared once
    } else if (line.rfind("# TYPE ", 0) == 0) {
      auto name = line.substr(7, line.find(' ', 7) - 7);
      CHECK(helped.count(name) == 1);
      CHECK(typed.insert(name).second);
    } else {
      auto name = line.substr(0, line.find_first_of("{ "));
      CHECK(typed.count(name) == 1);
      ++samples;
    }
  }
  // connections 3, transactions 4, downstream errors 4, bytes 2, replies 4, deferred 1, reused
  // downstream connections 1, pool gauges 2, PRDR 1 + 3, profile lookups 3, and the extra renderer's 1
  CHECK(samples == 3 + 4 + 4 + 2 + 4 + 1 + 1 + 2 + 1 + 3 + 3 + 1);
  CHECK(has_line(text, "dotgate_policy_greylist_deferred_total 4"));
  // The extra renderer comes after dotgate's own families.
  CHECK(text.find("dotgate_policy_greylist") > text.find("dotgate_replies_total{class=\"5xx\"}"));
}

TEST_CASE("metrics: no workers renders zeros") {
  Metrics m;
  std::string text = m.render();
  CHECK(has_line(text, "dotgate_connections_open 0"));
  CHECK(has_line(text, "dotgate_replies_total{class=\"2xx\"} 0"));
}
