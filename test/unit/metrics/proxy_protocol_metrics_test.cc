// test/unit/metrics/proxy_protocol_metrics_test.cc — lib/metrics/proxy_protocol_metrics: every
// series rendered from the start, each count landing on its own label.
#include <doctest/doctest.h>

#include <string>

#include "lib/metrics/proxy_protocol_metrics.h"

using dotgate::metrics::count_proxy_header_accepted;
using dotgate::metrics::count_proxy_header_refused;
using dotgate::metrics::ProxyHeaderRefusal;
using dotgate::metrics::render_proxy_protocol_metrics;

TEST_CASE("proxy protocol metrics: zeros first, then each count on its label") {
  std::string out;
  render_proxy_protocol_metrics(out);
  CHECK(out.find("# TYPE dotgate_proxy_headers_accepted_total counter\n") != std::string::npos);
  CHECK(out.find("# TYPE dotgate_proxy_headers_refused_total counter\n") != std::string::npos);
  CHECK(out.find("dotgate_proxy_headers_accepted_total{version=\"1\"} 0\n") != std::string::npos);
  CHECK(out.find("dotgate_proxy_headers_accepted_total{version=\"2\"} 0\n") != std::string::npos);
  for (const char* r : {"untrusted", "malformed", "oversized", "timeout", "closed"})
    CHECK(out.find("dotgate_proxy_headers_refused_total{reason=\"" + std::string(r) + "\"} 0\n") != std::string::npos);

  count_proxy_header_accepted(2);
  count_proxy_header_accepted(2);
  count_proxy_header_accepted(1);
  count_proxy_header_refused(ProxyHeaderRefusal::Oversized);
  out.clear();
  render_proxy_protocol_metrics(out);
  CHECK(out.find("dotgate_proxy_headers_accepted_total{version=\"1\"} 1\n") != std::string::npos);
  CHECK(out.find("dotgate_proxy_headers_accepted_total{version=\"2\"} 2\n") != std::string::npos);
  CHECK(out.find("dotgate_proxy_headers_refused_total{reason=\"oversized\"} 1\n") != std::string::npos);
  CHECK(out.find("dotgate_proxy_headers_refused_total{reason=\"malformed\"} 0\n") != std::string::npos);
}
