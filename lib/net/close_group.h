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
#include <vector>

#include <uv.h>

namespace dotgate::net {

class CloseGroup {
 public:
  void add(uv_handle_t* handle) { handles_.push_back(handle); }
  // Closes every handle added; `done` after the last close callback. Once.
  void close(std::function<void()> done);
  bool closing() const { return closing_; }

 private:
  static void on_close(uv_handle_t* handle);
  std::vector<uv_handle_t*> handles_;
  std::size_t open_ = 0;
  bool closing_ = false;
  std::function<void()> done_;
};

}  // namespace dotgate::net
