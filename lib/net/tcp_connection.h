// lib/net/tcp_connection.h — one TCP connection (a uv_tcp_t) and its writes.
//
// Owned by whoever created it (a Session, the admin server); that owner receives every event
// through TcpConnection::Events. The connection is heap-allocated and frees itself after its close
// callback, right after telling the owner on_closed(): the owner must drop its pointer there and
// never touch it again. close() is idempotent; close_after_flush() lets queued writes reach the
// peer first (uv_shutdown, then uv_close), used for a final reply such as 221 or 421.
// Ownership may pass from one owner to another (a worker's downstream pool hands a pre-greeted
// connection to a session and takes it back to say QUIT): set_events() switches the target; every
// later event, on_closed included, goes to the new owner only.
// Reads land in a buffer shared by every connection of the loop (ReadBuffer): events are handled
// synchronously in the read callback, so an idle connection holds no read memory at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <uv.h>

#include "lib/net/busy_poll.h"

namespace dotgate::net {

// One per loop; handed to every connection on it.
struct ReadBuffer {
  static constexpr std::size_t kSize = 64 * 1024;
  char data[kSize];
  bool in_use = false;
  BusyPoll* busy_poll = nullptr;  // the loop's, when it polls after reads (worker.busy_poll)
};

class TcpConnection {
 public:
  class Events {
   public:
    virtual ~Events() = default;
    virtual void on_connected(TcpConnection&, int /*status*/) {}
    virtual void on_data(TcpConnection&, std::string_view data) = 0;
    // The peer closed (UV_EOF) or the connection failed (negative libuv error). No more data.
    virtual void on_end(TcpConnection&, int status) = 0;
    virtual void on_drained(TcpConnection&) {}  // the write queue became empty
    virtual void on_closed(TcpConnection&) = 0;  // last call; the object is freed right after
  };

  static TcpConnection* create(uv_loop_t* loop, Events* events, ReadBuffer* buffer);

  // Hands the connection to another owner (loop thread only). The old owner must drop its pointer.
  void set_events(Events* events) { events_ = events; }

  int accept_from(uv_stream_t* server);
  int connect(const sockaddr* address);
  int start_reading();
  void stop_reading();
  void write(std::string_view bytes);  // copies; a failure arrives as on_end
  std::size_t queued_bytes() const { return queued_bytes_; }
  void set_nodelay();

  void close();              // drop queued writes, close now
  void close_after_flush();  // let queued writes go, then close
  bool closing() const { return closing_; }

  std::string peer_name() const;  // "1.2.3.4:567" / "[::1]:567"

  void* user_tag = nullptr;  // for the owner (which of its connections this is)

 private:
  TcpConnection(Events* events, ReadBuffer* buffer) : events_(events), buffer_(buffer) {}
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
