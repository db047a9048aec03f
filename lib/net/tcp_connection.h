// lib/net/tcp_connection.h — one TCP connection (a uv_tcp_t) and its writes: the plain Stream.
//
// Owned by whoever created it (a Session, the pool, the HTTP client); that owner receives every
// event through Stream::Events (stream.h says what each means and how ownership passes on). The
// connection is heap-allocated and frees itself after its close callback, right after telling the
// owner on_closed(). close() is idempotent; close_after_flush() lets queued writes reach the peer
// first (uv_shutdown, then uv_close), used for a final reply such as 221 or 421.
// Reads land in a buffer shared by every connection of the loop (ReadBuffer): events are handled
// synchronously in the read callback, so an idle connection holds no read memory at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <uv.h>

#include "lib/net/busy_poll.h"
#include "lib/net/stream.h"

namespace dotgate::net {

// One per loop; handed to every connection on it.
struct ReadBuffer {
  static constexpr std::size_t kSize = 64 * 1024;
  char data[kSize];
  bool in_use = false;
  BusyPoll* busy_poll = nullptr;  // the loop's, when it polls after reads (worker.busy_poll)
};

class TcpConnection final : public Stream {
 public:
  using Events = Stream::Events;

  static TcpConnection* create(uv_loop_t* loop, Events* events, ReadBuffer* buffer);

  void set_events(Events* events) override { events_ = events; }

  int accept_from(uv_stream_t* server);
  int connect(const sockaddr* address);
  int start_reading() override;
  void stop_reading() override;
  void write(std::string_view bytes) override;  // copies; a failure arrives as on_end
  std::size_t queued_bytes() const override { return queued_bytes_; }
  void set_nodelay() override;

  void close() override;
  void close_after_flush() override;
  bool closing() const override { return closing_; }

  std::string peer_name() const override;
  std::string local_name() const;  // the address the peer connected to, in peer_name()'s form

 private:
  TcpConnection(Events* events, ReadBuffer* buffer) : events_(events), buffer_(buffer) {}
  void end(int status);  // on_end, once
  static void on_alloc(uv_handle_t*, std::size_t, uv_buf_t*);
  static void on_read(uv_stream_t*, ssize_t, const uv_buf_t*);
  static void on_write(uv_write_t*, int);
  static void on_connect(uv_connect_t*, int);
  static void on_shutdown(uv_shutdown_t*, int);
  static void on_close(uv_handle_t*);

  uv_tcp_t tcp_{};
  uv_connect_t connect_req_{};
  uv_shutdown_t shutdown_req_{};
  Events* events_;
  ReadBuffer* buffer_;
  std::size_t queued_bytes_ = 0;
  bool reading_ = false;
  bool ended_ = false;     // on_end delivered: never deliver it twice
  bool closing_ = false;
  bool shutting_down_ = false;
};

// Converts an IPv4/IPv6 literal and port to a sockaddr_storage. Returns 0 or a libuv error.
int make_sockaddr(const std::string& address, int port, sockaddr_storage* out);

}  // namespace dotgate::net
