// lib/store/store_metrics.h — the state store's latency histogram and errors
// (dotgate_store_latency_seconds{backend,op}, dotgate_store_errors_total{backend,reason}).
//
// Process-wide relaxed atomics, recorded by the backends when an answer is delivered on its loop
// (so the time includes the queueing a caller sees), rendered at scrape time by whoever adds
// render_store_metrics to the metrics (the greylist policy, the first time one is built). Blocks
// are made on first use per backend and never freed: a worker may record while the process ends.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace dotgate::store {

enum class Op { Get, Set, Increment, kCount };

void record_latency(std::string_view backend, Op op, std::chrono::steady_clock::duration elapsed);
void record_error(std::string_view backend, std::string_view reason);
// Appends the dotgate_store_* families (a metrics::Renderer).
void render_store_metrics(std::string& out);

}  // namespace dotgate::store
