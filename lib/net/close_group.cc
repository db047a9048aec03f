// lib/net/close_group.cc — see close_group.h.
#include "lib/net/close_group.h"

namespace dotgate::net {

void CloseGroup::close(std::function<void()> done) {
  if (closing_) return;
  closing_ = true;
  done_ = std::move(done);
  open_ = count_;
  if (open_ == 0) {
    // Nothing to wait for: still from the loop's point of view "after the close sequence", so the
    // caller must not touch the owner after close() returns either way.
    auto cb = std::move(done_);
    cb();
    return;
  }
  for (std::size_t i = 0; i < count_; ++i) {
    uv_handle_t* h = handles_[i];
    h->data = this;
    uv_close(h, &CloseGroup::on_close);
  }
}

void CloseGroup::on_close(uv_handle_t* handle) {
  auto* group = static_cast<CloseGroup*>(handle->data);
  if (--group->open_ > 0) return;
  auto cb = std::move(group->done_);
  cb();  // may free the group's owner, and the group with it
}

}  // namespace dotgate::net
