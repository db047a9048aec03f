// proxy/downstream_probe.cc — see downstream_probe.h.
#include "proxy/downstream_probe.h"

#include "lib/log/log.h"

namespace dotgate::proxy {

DownstreamProbe::DownstreamProbe(uv_loop_t* loop, Shared& shared, std::uint64_t interval_ms)
    : loop_(loop), shared_(shared), interval_ms_(interval_ms) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

void DownstreamProbe::start() {
  uv_timer_start(&timer_, [](uv_timer_t* t) {
    auto* self = static_cast<DownstreamProbe*>(t->data);
    if (!self->shared_.downstream_reachable.load()) self->probe();
  }, interval_ms_, interval_ms_);
}

void DownstreamProbe::probe() {
  if (connection_ || closing_) return;  // the previous probe is still out
  auto rt = shared_.runtime();
  connection_ = net::TcpConnection::create(loop_, this, &buffer_);
  if (connection_->connect(reinterpret_cast<const sockaddr*>(&rt->downstream_address)) != 0) {
    shared_.downstream_reachable.store(false);
    connection_->close();
  }
}

void DownstreamProbe::on_connected(net::Stream& c, int status) {
  bool ok = status == 0;
  if (ok != shared_.downstream_reachable.load())
    log::info(ok ? "downstream reachable" : "downstream unreachable", {{"error", ok ? "" : uv_strerror(status)}});
  shared_.downstream_reachable.store(ok);
  c.close();
}

void DownstreamProbe::on_closed(net::Stream& c) {
  if (&c == connection_) connection_ = nullptr;
  maybe_done();
}

void DownstreamProbe::close(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  if (connection_) connection_->close();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
    auto* self = static_cast<DownstreamProbe*>(h->data);
    self->timer_closed_ = true;
    self->maybe_done();
  });
}

void DownstreamProbe::maybe_done() {
  if (closing_ && timer_closed_ && !connection_ && on_closed_) {
    auto cb = std::move(on_closed_);
    on_closed_ = nullptr;
    cb();
  }
}

}  // namespace dotgate::proxy
