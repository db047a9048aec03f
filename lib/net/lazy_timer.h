// lib/net/lazy_timer.h — a timeout pushed back on every event without a libuv heap operation.
//
// A session re-arms its command and reply timeouts on nearly every line; uv_timer_start and
// uv_timer_stop each take the timer out of libuv's heap and put it back, several times per
// message. A LazyTimer only records the new deadline when it is later than the one libuv holds:
// the libuv timer fires at the old time, sees the deadline moved, and is armed again for the rest;
// stop() only forgets the deadline. A timeout that must come sooner re-arms at once. Timeouts are
// seconds to minutes, so an early wake-up is rare and cheap.
// `handle` is a plain uv_timer_t: its data is the owner's, the callback gets it as from libuv, and
// the owner closes it (uv_close) in its own close sequence. The loop thread only.
#pragma once

#include <cstdint>

#include <uv.h>

namespace dotgate::net {

struct LazyTimer {
  uv_timer_t handle{};  // first member: the libuv callback finds the LazyTimer from it
  uv_timer_cb callback = nullptr;
  std::uint64_t deadline = 0;  // loop time (ms) of the owner's timeout; 0: stopped
  std::uint64_t due = 0;       // when the libuv timer fires, while it is active

  void init(uv_loop_t* loop, void* data) {
    uv_timer_init(loop, &handle);
    handle.data = data;
  }
  // Calls `cb` (with &handle) `timeout_ms` from now, unless armed again or stopped before.
  void arm(uv_timer_cb cb, std::uint64_t timeout_ms);
  void stop() { deadline = 0; }
  bool armed() const { return deadline != 0; }

 private:
  static void on_fire(uv_timer_t* t);
};

}  // namespace dotgate::net
