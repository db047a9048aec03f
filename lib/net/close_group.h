// lib/net/close_group.h — closes the libuv handles embedded in one owner and calls back once the
// last close callback has run.
//
// libuv reads a handle until its close callback: an owner whose handles are its own members (a
// Session's timers) may free itself only after all of them. The owner adds each handle when it
// initialises it and calls close() once, in its close sequence; `done` (typically `delete this`)
// runs from the loop after the last callback. The group is the only thing that counts, so no
// owner keeps a counter by hand. A handle's data is the owner's until close(), the group's after.
#pragma once

#include <cstddef>
#include <functional>
#include <array>

#include <uv.h>

namespace dotgate::net {

class CloseGroup {
 public:
  // At most kMax handles: a fixed array, so a session's group costs no allocation.
  static constexpr std::size_t kMax = 4;
  void add(uv_handle_t* handle) {
    if (count_ < kMax) handles_[count_++] = handle;  // a fifth is a programming error: see close()
  }
  // Closes every handle added; `done` after the last close callback. Once.
  void close(std::function<void()> done);
  bool closing() const { return closing_; }

 private:
  static void on_close(uv_handle_t* handle);
  std::array<uv_handle_t*, kMax> handles_{};
  std::size_t count_ = 0;
  std::size_t open_ = 0;
  bool closing_ = false;
  std::function<void()> done_;
};

}  // namespace dotgate::net
