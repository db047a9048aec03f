// lib/net/listener.h — a listening TCP socket shared between worker loops with SO_REUSEPORT.
//
// Each worker owns one Listener per configured address; the kernel spreads new connections over
// the workers' sockets (no accept lock, no shared state). libuv 1.44 cannot set SO_REUSEPORT
// itself, so the socket is made, flagged and bound here, then handed to uv_tcp_open. The owner
// calls close() and waits for on_closed before freeing the Listener.
#pragma once

#include <functional>
#include <string>

#include <uv.h>

#include "lib/config/config.h"

namespace dotgate::net {

class Listener {
 public:
  using AcceptFn = std::function<void(uv_stream_t* server)>;

  Listener(uv_loop_t* loop, AcceptFn on_connection);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds (with SO_REUSEPORT) and listens. Returns 0 or a negative errno/libuv code; `error`
  // then says what failed ("bind 127.0.0.1:25: address already in use").
  int open(const config::Endpoint& endpoint, std::string& error);
  int port() const;  // the bound port (useful when configured as 0)
  void close(std::function<void()> on_closed);

 private:
  static void on_connection(uv_stream_t* server, int status);
  uv_tcp_t tcp_{};
  AcceptFn accept_;
  std::function<void()> on_closed_;
  bool opened_ = false;
};

}  // namespace dotgate::net
