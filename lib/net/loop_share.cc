// lib/net/loop_share.cc — see loop_share.h.
#include "lib/net/loop_share.h"

#include <set>
#include <utility>
#include <vector>

namespace dotgate::net {

// The object the last user gave up, held by a timer on its loop.
struct LoopShare::Linger {
  uv_timer_t timer{};
  void* object = nullptr;
  uv_loop_t* loop = nullptr;
  std::shared_ptr<const Close> close;
  std::weak_ptr<State> state;  // the share's map, unless the share is gone (a reload)
};

namespace {
// The lingers on this thread's loop (a worker's loop runs on one thread), for release_lingering().
thread_local std::set<void*> t_lingers;
thread_local bool t_no_linger = false;
}  // namespace

LoopShare::LoopShare(Make make, Close close, std::chrono::milliseconds linger)
    : make_(std::move(make)), close_(std::make_shared<const Close>(std::move(close))), linger_(linger) {}

void LoopShare::close_timer(Linger* l) {
  // The timer's memory is the Linger's: it goes once libuv is done with the handle.
  uv_close(reinterpret_cast<uv_handle_t*>(&l->timer), [](uv_handle_t* h) { delete static_cast<Linger*>(h->data); });
}

void* LoopShare::acquire(uv_loop_t* loop) {
  Linger* resumed = nullptr;
  void* object = nullptr;
  {
    std::lock_guard lock(state_->mutex);
    Entry& e = state_->objects[loop];
    if (e.object == nullptr) e.object = make_(loop);
    if (e.linger) {
      resumed = e.linger;  // the object passes back to its users
      e.linger = nullptr;
    }
    ++e.users;
    object = e.object;
  }
  if (resumed) {
    t_lingers.erase(resumed);
    uv_timer_stop(&resumed->timer);
    resumed->object = nullptr;
    close_timer(resumed);
  }
  return object;
}

void LoopShare::release(uv_loop_t* loop) {
  void* to_close = nullptr;
  Linger* l = nullptr;
  const bool linger = linger_.count() > 0 && !t_no_linger;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->objects.find(loop);
    if (it == state_->objects.end() || it->second.users == 0) return;
    if (--it->second.users > 0) return;
    if (!linger) {
      to_close = it->second.object;
      state_->objects.erase(it);
    } else {
      l = new Linger;
      l->object = it->second.object;
      l->loop = loop;
      l->close = close_;
      l->state = state_;
      it->second.linger = l;
    }
  }
  if (to_close) {
    (*close_)(to_close);  // outside the lock, on this loop's thread
    return;
  }
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  t_lingers.insert(l);
  uv_timer_start(&l->timer, [](uv_timer_t* t) { expire(static_cast<Linger*>(t->data)); },
                 static_cast<std::uint64_t>(linger_.count()), 0);
}

void LoopShare::expire(Linger* l) {
  t_lingers.erase(l);
  if (auto state = l->state.lock()) {
    std::lock_guard lock(state->mutex);
    auto it = state->objects.find(l->loop);
    if (it != state->objects.end() && it->second.linger == l) state->objects.erase(it);
  }
  if (l->object) (*l->close)(l->object);
  l->object = nullptr;
  uv_timer_stop(&l->timer);
  close_timer(l);
}

void LoopShare::release_lingering() {
  t_no_linger = true;
  std::vector<void*> lingers(t_lingers.begin(), t_lingers.end());
  for (void* l : lingers) expire(static_cast<Linger*>(l));  // each erases itself from t_lingers
}

std::size_t LoopShare::lingering() const {
  std::lock_guard lock(state_->mutex);
  std::size_t n = 0;
  for (const auto& [loop, entry] : state_->objects)
    if (entry.linger) ++n;
  return n;
}

}  // namespace dotgate::net
