// proxy/downstream_probe.h — keeps Shared::downstream_reachable honest when no session runs.
//
// Sessions report every downstream connect. But a replica marked not-ready gets no traffic (its
// Service stops routing to it), so nothing would ever clear the flag: this probe, on the main
// loop, connects to the downstream every `interval` while the flag is false, and closes at once
// (no SMTP is spoken; the MTA logs a lost connection, so it never probes a healthy downstream). Owns one timer and at
// most one TcpConnection; close() ends both and calls back after the last close callback.
#pragma once

#include <functional>

#include <uv.h>

#include "lib/net/tcp_connection.h"
#include "proxy/runtime.h"

namespace dotgate::proxy {

class DownstreamProbe final : public net::Stream::Events {
 public:
  DownstreamProbe(uv_loop_t* loop, Shared& shared, std::uint64_t interval_ms);
  void start();
  void close(std::function<void()> on_closed);

  void on_connected(net::Stream& c, int status) override;
  void on_data(net::Stream&, std::string_view) override {}
  void on_end(net::Stream&, const net::StreamEnd&) override {}
  void on_closed(net::Stream& c) override;

 private:
  void probe();
  void maybe_done();
  uv_loop_t* loop_;
  Shared& shared_;
  std::uint64_t interval_ms_;
  uv_timer_t timer_{};
  net::ReadBuffer buffer_;
  net::TcpConnection* connection_ = nullptr;
  bool closing_ = false;
  bool timer_closed_ = false;
  std::function<void()> on_closed_;
};

}  // namespace dotgate::proxy
