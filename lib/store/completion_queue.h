// lib/store/completion_queue.h — delivers results to a loop's thread, later, from any thread.
//
// Who uses it: the Store backends. The LMDB writer thread posts the answers of its writes; a
// loop-thread read posts its own answer too, so that no callback ever runs inside the call that
// asked (libuv's rule). Who owns what: the queue is shared (std::shared_ptr) by its loop store and
// by whoever may still post; its uv_async_t is made on the loop's thread and holds a reference
// until its close callback, so a post that races with close() finds a valid, closed queue and is
// dropped. Items run in the order posted; after close() none runs, even those already taken.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <uv.h>

namespace dotgate::store {

class CompletionQueue : public std::enable_shared_from_this<CompletionQueue> {
 public:
  // On the loop's thread. Returns nullptr if libuv refuses the handle.
  static std::shared_ptr<CompletionQueue> open(uv_loop_t* loop);
  // Any thread. Dropped when the queue is closed.
  void post(std::function<void()> item);
  // The loop's thread: nothing more runs; the handle closes (and lets go of the queue) later.
  void close();
  bool closed() const;

 private:
  struct Handle;
  CompletionQueue() = default;
  void deliver();
  mutable std::mutex mutex_;
  std::vector<std::function<void()>> items_;
  bool closed_ = false;
  Handle* handle_ = nullptr;
};

}  // namespace dotgate::store
