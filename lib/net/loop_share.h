// lib/net/loop_share.h — one object per event loop, shared by its users on that loop, and kept
// for a while after the last of them lets go.
//
// Who uses it: the keep-alive HTTP clients of the webhook and rspamd policies
// (policies/client_registry) and the state store's per-loop connections (lib/store). An MX sees
// mostly one message per client connection, so each session's policies come and go; without the
// linger every session would open a new connection to the service.
// Who calls what: a user calls acquire(loop) from the loop's thread (the object is made on first
// use, or taken back from its linger) and release(loop) exactly once later, from the same thread.
// When the last user on a loop lets go, the object lingers for `linger` on a timer of that loop,
// then `close` is called with it (on the loop's thread). A linger of 0 closes at the last release.
// How it ends: a worker that shuts down calls release_lingering() from its loop thread first, so
// its loop ends with nothing of ours open; from then on last releases on that thread close at once.
// A LoopShare destroyed while objects linger (a reload) leaves them to their timers.
// The map is shared by worker threads, so it is locked; `make` runs under the lock, `close` does not.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include <uv.h>

namespace dotgate::net {

class LoopShare {
 public:
  using Make = std::function<void*(uv_loop_t*)>;
  using Close = std::function<void(void*)>;

  LoopShare(Make make, Close close, std::chrono::milliseconds linger);
  LoopShare(const LoopShare&) = delete;
  LoopShare& operator=(const LoopShare&) = delete;

  void* acquire(uv_loop_t* loop);
  void release(uv_loop_t* loop);

  // Objects lingering on any loop, for the tests.
  std::size_t lingering() const;

  // Every object of every LoopShare lingering on the calling thread's loop closes now, and later
  // last releases on this thread close at once. For a worker's shutdown, from its loop thread.
  static void release_lingering();

 private:
  struct Linger;
  struct Entry {
    void* object = nullptr;
    std::size_t users = 0;
    Linger* linger = nullptr;  // set while no user holds the object
  };
  struct State {
    mutable std::mutex mutex;
    std::map<uv_loop_t*, Entry> objects;
  };
  static void expire(Linger* linger);
  static void close_timer(Linger* linger);

  const Make make_;
  const std::shared_ptr<const Close> close_;  // a linger keeps it: it may outlive this LoopShare
  const std::chrono::milliseconds linger_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// LoopShare with the object's type.
template <class T>
class LoopShareOf {
 public:
  LoopShareOf(std::function<T*(uv_loop_t*)> make, std::function<void(T*)> close, std::chrono::milliseconds linger)
      : share_([make = std::move(make)](uv_loop_t* loop) -> void* { return make(loop); },
               [close = std::move(close)](void* object) { close(static_cast<T*>(object)); }, linger) {}

  T* acquire(uv_loop_t* loop) { return static_cast<T*>(share_.acquire(loop)); }
  void release(uv_loop_t* loop) { share_.release(loop); }
  std::size_t lingering() const { return share_.lingering(); }

 private:
  LoopShare share_;
};

}  // namespace dotgate::net
