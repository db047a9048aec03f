// lib/net/stream.h — a byte stream as its user sees it: plaintext in, plaintext out.
//
// The session, the downstream pool, the probe and the HTTP client talk to a Stream, never to a
// socket: plain TCP is one implementation (tcp_connection.h); a TLS filter over OpenSSL memory
// BIOs is another, wrapping a TCP stream, so that STARTTLS and implicit TLS change nothing above
// it. What an implementation must keep:
//   - on_connected comes once the stream is usable: TCP connected, and for TLS the handshake done
//     (an accepted stream is usable at once and never says on_connected);
//   - on_data carries plaintext; it is valid only during the call;
//   - on_end comes at most once, with why: a clean end (EOF, close_notify) or an error, which may
//     be a libuv code or the TLS layer's own (StreamEnd::detail says which);
//   - write() copies; a write error arrives as on_end;
//   - close_after_flush() lets queued bytes (and TLS's close_notify) go first;
//   - on_closed is the last call; the stream frees itself right after it.
// Ownership: a stream has one owner at a time, the target of its events. set_events() hands it on
// (the pool lends a greeted connection to a session and takes it back to say QUIT). An owner that
// is done with a stream and does not care when it is gone drops it through StreamPtr: its events
// go nowhere from then on and it closes on its own, so the owner counts nothing.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace dotgate::net {

// Why a stream ended. status: UV_EOF for a clean end by the peer, another negative libuv code for
// a socket error, kStreamProtocolError for an error above the socket (TLS); detail says it in words.
struct StreamEnd {
  int status = 0;
  std::string detail;
  bool clean() const;
};
inline constexpr int kStreamProtocolError = -100000;  // below every libuv error code

class Stream {
 public:
  class Events {
   public:
    virtual ~Events() = default;
    virtual void on_connected(Stream&, int /*status*/) {}
    virtual void on_data(Stream&, std::string_view data) = 0;
    // The peer closed or the stream failed. No more data; writes go nowhere.
    virtual void on_end(Stream&, const StreamEnd& end) = 0;
    virtual void on_drained(Stream&) {}  // the write queue became empty
    virtual void on_closed(Stream&) {}   // last call; the stream is freed right after
  };

  virtual ~Stream() = default;

  // Hands the stream to another owner (loop thread only). The old owner must drop its pointer.
  virtual void set_events(Events* events) = 0;
  virtual int start_reading() = 0;
  virtual void stop_reading() = 0;
  virtual void write(std::string_view bytes) = 0;
  virtual std::size_t queued_bytes() const = 0;
  virtual void close() = 0;              // drop queued writes, close now
  virtual void close_after_flush() = 0;  // let queued writes go, then close
  virtual bool closing() const = 0;
  virtual std::string peer_name() const = 0;  // "1.2.3.4:567" / "[::1]:567"
  virtual void set_nodelay() = 0;  // small writes go at once (SMTP lines, replies)

  void* user_tag = nullptr;  // for the owner (which of its streams this is)

  // Events that go nowhere: what a dropped stream reports to.
  static Events& nowhere();
};

// Drops a stream its owner is done with: no further event reaches the owner; the stream closes
// (after its queued bytes, for close_after_flush) and frees itself.
void drop(Stream* stream, bool flush = false);

struct StreamDropper {
  void operator()(Stream* s) const { drop(s); }
};
// The owning pointer of a stream: reset() or destruction drops it (see drop()); release() hands
// it on (give set_events a new target first).
using StreamPtr = std::unique_ptr<Stream, StreamDropper>;

}  // namespace dotgate::net
