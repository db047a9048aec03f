// lib/store/completion_queue.cc — see completion_queue.h.
#include "lib/store/completion_queue.h"

namespace dotgate::store {

struct CompletionQueue::Handle {
  uv_async_t async{};
  std::shared_ptr<CompletionQueue> queue;  // until the close callback
};

std::shared_ptr<CompletionQueue> CompletionQueue::open(uv_loop_t* loop) {
  std::shared_ptr<CompletionQueue> q(new CompletionQueue);
  auto* h = new Handle;
  h->queue = q;
  h->async.data = h;
  if (uv_async_init(loop, &h->async, [](uv_async_t* a) { static_cast<Handle*>(a->data)->queue->deliver(); }) != 0) {
    delete h;
    return nullptr;
  }
  q->handle_ = h;
  return q;
}

void CompletionQueue::post(std::function<void()> item) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  items_.push_back(std::move(item));
  uv_async_send(&handle_->async);  // coalesced: one wake-up may deliver many
}

bool CompletionQueue::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

void CompletionQueue::close() {
  Handle* h = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    items_.clear();
    h = handle_;
    handle_ = nullptr;
  }
  // Under no lock: after closed_ nobody calls uv_async_send on it any more.
  uv_close(reinterpret_cast<uv_handle_t*>(&h->async), [](uv_handle_t* a) { delete static_cast<Handle*>(a->data); });
}

void CompletionQueue::deliver() {
  std::vector<std::function<void()>> items;
  {
    std::lock_guard lock(mutex_);
    items.swap(items_);
  }
  auto self = shared_from_this();  // an item may close the store, and with it this queue
  for (auto& item : items) {
    if (closed()) return;
    item();
  }
}

}  // namespace dotgate::store
