// lib/net/lazy_timer.cc — see lazy_timer.h.
#include "lib/net/lazy_timer.h"

#include <type_traits>

namespace dotgate::net {

static_assert(std::is_standard_layout_v<LazyTimer>, "on_fire casts the handle back to its LazyTimer");

void LazyTimer::arm(uv_timer_cb cb, std::uint64_t timeout_ms) {
  std::uint64_t now = uv_now(handle.loop);
  callback = cb;
  deadline = now + timeout_ms;
  if (deadline == 0) deadline = 1;  // 0 means stopped
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&handle)) && due <= deadline) return;
  due = deadline;
  uv_timer_start(&handle, &LazyTimer::on_fire, timeout_ms, 0);
}

void LazyTimer::on_fire(uv_timer_t* t) {
  auto* self = reinterpret_cast<LazyTimer*>(t);
  if (self->deadline == 0) return;  // stopped since it was armed
  std::uint64_t now = uv_now(t->loop);
  if (now < self->deadline) {  // pushed back since it was armed: wait for the rest
    self->due = self->deadline;
    uv_timer_start(t, &LazyTimer::on_fire, self->deadline - now, 0);
    return;
  }
  self->deadline = 0;
  self->callback(t);
}

}  // namespace dotgate::net
