// lib/net/busy_poll.cc — see busy_poll.h.
#include "lib/net/busy_poll.h"

#include <sched.h>

namespace dotgate::net {

BusyPoll::BusyPoll(uv_loop_t* loop, std::uint64_t budget_us) : budget_ns_(budget_us * 1000) {
  uv_idle_init(loop, &idle_);
  idle_.data = this;
}

void BusyPoll::start() {
  active_ = true;
  uv_idle_start(&idle_, &BusyPoll::on_idle);
}

void BusyPoll::on_idle(uv_idle_t* idle) {
  auto* b = static_cast<BusyPoll*>(idle->data);
  if (uv_hrtime() < b->deadline_ns_) {
    sched_yield();
    return;
  }
  b->active_ = false;
  uv_idle_stop(idle);
}

void BusyPoll::close(void (*done)(void*), void* arg) {
  closed_ = true;
  active_ = false;
  done_ = done;
  done_arg_ = arg;
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), [](uv_handle_t* h) {
    auto* b = static_cast<BusyPoll*>(h->data);
    if (b->done_) b->done_(b->done_arg_);
  });
}

}  // namespace dotgate::net
