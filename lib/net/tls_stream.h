// lib/net/tls_stream.h — TLS as a net::Stream: wraps an inner stream (a TcpConnection) and gives
// its own owner plaintext, so the session never knows whether TLS is on.
//
// Who makes one (TlsStream::wrap):
//   - implicit TLS (port 465): the worker or session wraps the accepted stream at once, Role::Server;
//   - STARTTLS on the client side (RFC 3207): the session writes its 220, discards what the
//     client pipelined after STARTTLS, then wraps the connected, reading client stream;
//   - STARTTLS towards the MTA: the downstream side wraps its stream after the MTA's 220,
//     Role::Client; or, for TLS from the first byte, wraps a fresh TcpConnection before it is
//     connected (Start::OnConnect) and the handshake starts at the inner's on_connected.
// What its owner sees (stream.h's rules, and these):
//   - on_connected(*this, 0) once the handshake is done, in both roles (also for a server stream,
//     which a plain accepted stream never says; an owner may ignore it). Start::OnConnect: a
//     failed TCP connect arrives as on_connected(status) unchanged;
//   - on_data: plaintext. A TLS stream reads from the start (a STARTTLS wrap goes on reading
//     as the stream it wraps did; the owner calls stop_reading() to pause, and the pause takes
//     effect once the handshake, which needs the peer's bytes, is done). Everything decrypted
//     from one inner read is delivered, even after stop_reading() (as a TcpConnection delivers
//     its whole read);
//   - on_end: a TLS error is StreamEnd{kStreamProtocolError, "tls: <OpenSSL's words>"}, after the
//     alert OpenSSL sent has been written; the peer's close_notify is a clean end (UV_EOF,
//     "close_notify"); the inner's end passes through with its status (an EOF without
//     close_notify is clean: SMTP has its own end, QUIT and the dot, so truncation cannot cut
//     a message short unnoticed);
//   - write() before the handshake is done is held and sent once it is (a greeting written at
//     accept on an implicit TLS listener); queued_bytes() counts held plaintext plus what the
//     inner has not handed to the kernel;
//   - close_after_flush(): close_notify, then the inner closes after its flush. Before the
//     handshake is done with writes held, it waits for the handshake, sends them, then closes;
//   - close(): the inner closes now, no close_notify;
//   - there is NO handshake timeout here: a peer that never finishes the handshake holds the
//     stream until its owner's timer closes it (the session's command timer, the downstream
//     link's connect timer), which must therefore run from before wrap().
// Ownership: the TLS stream is the inner's only owner (its Events target) from wrap() on; after
// the inner's on_closed it tells its own owner on_closed, then frees itself (and the engine).
// An owner must be ready for an event from inside wrap(): a write error on the inner (client
// role: the ClientHello goes out at once) arrives as on_end before wrap() returns.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "lib/net/stream.h"
#include "lib/tls/tls_engine.h"

namespace dotgate::net {

class TlsStream final : public Stream, private Stream::Events {
 public:
  using Role = tls::TlsEngine::Role;
  enum class Start {
    Now,        // the inner is connected (accepted, or after STARTTLS's 220): handshake at once
    OnConnect,  // the inner is connecting: handshake at its on_connected(0)
  };

  // Wraps `inner` (which must not be closing): from now on `events` is the owner of the returned
  // stream. The context must match the role (TlsContext::server for Role::Server).
  static StreamPtr wrap(StreamPtr inner, std::shared_ptr<const tls::TlsContext> context, Role role,
                        Stream::Events* events, Start start = Start::Now);

  // The TLS stream behind a Stream, or nullptr for a plain one (for the log line's facts).
  static const TlsStream* of(const Stream& stream);

  bool handshake_done() const { return engine_.handshake_done(); }
  tls::TlsFacts facts() const { return engine_.facts(); }  // empty before the handshake
  const std::string& error() const { return engine_.error(); }
  Role role() const { return engine_.role(); }

  // Ciphertext the inner read before this stream wrapped it (with a PROXY protocol header, which
  // precedes TLS on an implicit TLS connection), handled as if the inner had read it just now.
  // The owner may hear events from inside the call, as from any read.
  void receive_early(std::string_view ciphertext) { on_data(*inner_, ciphertext); }

  // net::Stream
  void set_events(Stream::Events* events) override { events_ = events; }
  int start_reading() override;
  void stop_reading() override;
  void write(std::string_view bytes) override;
  std::size_t queued_bytes() const override;
  void close() override;
  void close_after_flush() override;
  bool closing() const override { return closing_; }
  std::string peer_name() const override;
  void set_nodelay() override;

 private:
  TlsStream(Stream* inner, std::shared_ptr<const tls::TlsContext> context, Role role, Stream::Events* events);
  ~TlsStream() override = default;

  // Stream::Events of the inner stream
  void on_connected(Stream&, int status) override;
  void on_data(Stream&, std::string_view data) override;
  void on_end(Stream&, const StreamEnd& end) override;
  void on_drained(Stream&) override;
  void on_closed(Stream&) override;

  void begin_handshake();
  void handshake_completed(bool had_held);
  void send_to_inner(std::string& ciphertext);  // writes and empties it
  void end(int status, std::string detail);     // on_end to the owner, once
  void finish_flush_close();                    // close_notify, then the inner after its flush
  bool quiet() const { return closing_ || ended_; }  // the owner hears nothing more but on_closed

  Stream* inner_;  // owned; gone after its on_closed
  Stream::Events* events_;
  tls::TlsEngine engine_;
  bool inner_ready_ = false;     // connected: reads and writes may go to it
  bool owner_reading_ = true;    // see the header: on unless the owner pauses
  bool ended_ = false;           // on_end delivered
  bool closing_ = false;         // close() or close_after_flush() called
  bool flush_after_handshake_ = false;  // close_after_flush() waits for the handshake (held writes)
};

}  // namespace dotgate::net
