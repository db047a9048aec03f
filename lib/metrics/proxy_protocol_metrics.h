// lib/metrics/proxy_protocol_metrics.h — dotgate_proxy_headers_accepted_total{version} and
// dotgate_proxy_headers_refused_total{reason}: what the PROXY protocol listeners made of the
// headers they were sent.
//
// Who counts: the session of a proxy_protocol listener, once per connection (accepted, or refused
// and closed with nothing relayed). Who renders: the admin thread, through a Metrics renderer
// registered at start. What it owns: process-wide relaxed atomics that live as long as the
// process. Not striped per worker like WorkerCounters: one add per connection (not per byte or
// per command) is far below the rate at which a shared cache line costs anything.
#pragma once

#include <string>

namespace dotgate::metrics {

// Why a connection on a proxy_protocol listener was closed before its greeting.
enum class ProxyHeaderRefusal {
  Untrusted,  // the peer is not in the listener's proxy_protocol_from
  Malformed,  // not a PROXY header, or one the spec forbids
  Oversized,  // past the parser's caps (a v1 line over 107 bytes, a v2 block over 2048)
  Timeout,    // no complete header within proxy_protocol_timeout
  Closed,     // the peer closed (or reset) before its header was complete
  kCount
};

// The label value of a refusal ("untrusted"), also the reason its log line gives.
const char* proxy_header_refusal_name(ProxyHeaderRefusal why);

void count_proxy_header_accepted(int version);  // 1 or 2
void count_proxy_header_refused(ProxyHeaderRefusal why);
// Both families, every label value from the start (zeros included), so a dashboard or an alert
// sees the series before the first header.
void render_proxy_protocol_metrics(std::string& out);

}  // namespace dotgate::metrics
