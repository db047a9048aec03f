// lib/metrics/proxy_protocol_metrics.cc — see proxy_protocol_metrics.h.
#include "lib/metrics/proxy_protocol_metrics.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <iterator>

namespace dotgate::metrics {

namespace {

constexpr const char* kRefusals[] = {"untrusted", "malformed", "oversized", "timeout", "closed"};
static_assert(std::size(kRefusals) == static_cast<std::size_t>(ProxyHeaderRefusal::kCount));

std::array<std::atomic<std::uint64_t>, 2> accepted{};  // v1, v2
std::array<std::atomic<std::uint64_t>, std::size(kRefusals)> refused{};

}  // namespace

const char* proxy_header_refusal_name(ProxyHeaderRefusal why) { return kRefusals[static_cast<std::size_t>(why)]; }

void count_proxy_header_accepted(int version) {
  accepted[version == 1 ? 0 : 1].fetch_add(1, std::memory_order_relaxed);
}

void count_proxy_header_refused(ProxyHeaderRefusal why) {
  refused[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
}

void render_proxy_protocol_metrics(std::string& out) {
  out += "# HELP dotgate_proxy_headers_accepted_total PROXY protocol headers accepted on proxy_protocol listeners, by version.\n"
         "# TYPE dotgate_proxy_headers_accepted_total counter\n";
  for (int v = 1; v <= 2; ++v)
    out += "dotgate_proxy_headers_accepted_total{version=\"" + std::to_string(v) + "\"} " +
           std::to_string(accepted[v - 1].load(std::memory_order_relaxed)) + "\n";
  out += "# HELP dotgate_proxy_headers_refused_total Connections on proxy_protocol listeners closed before any greeting, by reason.\n"
         "# TYPE dotgate_proxy_headers_refused_total counter\n";
  for (std::size_t i = 0; i < std::size(kRefusals); ++i)
    out += "dotgate_proxy_headers_refused_total{reason=\"" + std::string(kRefusals[i]) + "\"} " +
           std::to_string(refused[i].load(std::memory_order_relaxed)) + "\n";
}

}  // namespace dotgate::metrics
