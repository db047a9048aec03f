// lib/net/tls_stream.cc — see tls_stream.h. Every path that calls the owner or the inner
// (which may call back at once: a write error is an on_end) checks quiet() afterwards; the object
// itself stays valid until the inner's on_closed, which never comes from inside a call of ours
// on a real stream (uv_close calls back from the loop).
// Buffers: the plaintext and ciphertext of one call live in strings borrowed from this thread's
// spares (Scratch), so an idle TLS stream holds no buffer of its own.
#include "lib/net/tls_stream.h"

#include <uv.h>

#include <utility>
#include <vector>

namespace dotgate::net {

namespace {

// A string borrowed for one call from the thread's spares and given back emptied, capacity kept
// (up to a bound): no allocation per read or write once warm, and nothing held per stream.
// Re-entrant: a nested borrow (the owner writes from inside on_data) takes another spare.
class Scratch {
 public:
  Scratch() {
    auto& s = spares();
    if (!s.empty()) {
      str_.swap(s.back());
      s.pop_back();
    }
  }
  ~Scratch() {
    auto& s = spares();
    // 256 KiB: a few inner reads' worth; a larger one (a burst) is freed, not kept forever.
    if (s.size() >= 4 || str_.capacity() > 256 * 1024) return;
    str_.clear();
    s.push_back(std::move(str_));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  std::string& str() { return str_; }

 private:
  static std::vector<std::string>& spares() {
    thread_local std::vector<std::string> s;
    return s;
  }
  std::string str_;
};

}  // namespace

StreamPtr TlsStream::wrap(StreamPtr inner, std::shared_ptr<const tls::TlsContext> context, Role role,
                          Stream::Events* events, Start start) {
  auto* t = new TlsStream(inner.release(), std::move(context), role, events);
  t->inner_->set_events(t);
  StreamPtr out(t);
  if (start == Start::Now) t->begin_handshake();
  return out;
}

const TlsStream* TlsStream::of(const Stream& stream) { return dynamic_cast<const TlsStream*>(&stream); }

TlsStream::TlsStream(Stream* inner, std::shared_ptr<const tls::TlsContext> context, Role role, Stream::Events* events)
    : inner_(inner), events_(events), engine_(std::move(context), role) {}

void TlsStream::begin_handshake() {
  inner_ready_ = true;
  // The handshake needs the peer's bytes whatever the owner wants; reading follows the owner's
  // wish once it is done (handshake_completed).
  inner_->start_reading();
  Scratch out;
  engine_.start(out.str());
  send_to_inner(out.str());
}

void TlsStream::send_to_inner(std::string& ciphertext) {
  if (!ciphertext.empty() && inner_ && !inner_->closing()) inner_->write(ciphertext);
  ciphertext.clear();
}

void TlsStream::end(int status, std::string detail) {
  if (ended_) return;
  ended_ = true;
  if (inner_ && !inner_->closing()) inner_->stop_reading();
  events_->on_end(*this, StreamEnd{status, std::move(detail)});
}

// ---- the inner's events ------------------------------------------------------------------------

void TlsStream::on_connected(Stream&, int status) {
  if (closing_) return;
  if (status != 0) {
    events_->on_connected(*this, status);  // the TCP connect failed: the owner's usual path
    return;
  }
  begin_handshake();
}

void TlsStream::on_data(Stream&, std::string_view data) {
  // Closing with writes held for the handshake: the handshake must still go on to send them.
  if (ended_ || (closing_ && !flush_after_handshake_)) return;
  bool was_done = engine_.handshake_done();
  bool had_held = engine_.held_bytes() > 0;
  Scratch plain, out;
  engine_.receive(data, plain.str(), out.str());
  send_to_inner(out.str());  // handshake replies, alerts, held plaintext encrypted just now
  if (flush_after_handshake_) {
    if (engine_.handshake_done() || engine_.state() == tls::TlsEngine::State::Failed) {
      flush_after_handshake_ = false;
      finish_flush_close();
    }
    return;  // the owner closed: it hears nothing but on_closed
  }
  if (quiet()) return;
  if (!was_done && engine_.handshake_done()) {
    handshake_completed(had_held);
    if (quiet()) return;
  }
  if (!plain.str().empty()) {
    events_->on_data(*this, plain.str());
    if (quiet()) return;
  }
  if (engine_.state() == tls::TlsEngine::State::Failed)
    end(kStreamProtocolError, "tls: " + engine_.error());
  else if (engine_.peer_closed())
    end(UV_EOF, "close_notify");
}

void TlsStream::handshake_completed(bool had_held) {
  if (!owner_reading_) inner_->stop_reading();
  events_->on_connected(*this, 0);
  if (quiet()) return;
  // Held writes went out with the handshake's last flight; if they went straight to the kernel
  // the inner says no on_drained, and an owner waiting for one (a session holding its command
  // loop for a client's queue) would wait forever.
  if (had_held && queued_bytes() == 0) events_->on_drained(*this);
}

void TlsStream::on_end(Stream&, const StreamEnd& inner_end) {
  if (closing_) {
    if (flush_after_handshake_) {  // the peer left before the handshake could send what is held
      flush_after_handshake_ = false;
      inner_->close();
    }
    return;
  }
  if (ended_) return;
  std::string detail = inner_end.detail;
  if (!engine_.handshake_done())
    detail = "during the TLS handshake: " + detail;
  else if (inner_end.clean())
    detail += " (no close_notify)";
  end(inner_end.status, std::move(detail));
}

void TlsStream::on_drained(Stream&) {
  if (quiet() || engine_.held_bytes() > 0) return;
  events_->on_drained(*this);
}

void TlsStream::on_closed(Stream&) {
  inner_ = nullptr;  // freed right after this returns
  events_->on_closed(*this);
  delete this;
}

// ---- net::Stream -------------------------------------------------------------------------------

int TlsStream::start_reading() {
  owner_reading_ = true;
  if (!inner_ready_ || closing_ || ended_) return 0;
  return inner_->start_reading();
}

void TlsStream::stop_reading() {
  owner_reading_ = false;
  // During the handshake the inner goes on reading: handshake_completed() stops it then.
  if (inner_ready_ && engine_.handshake_done() && !closing_ && !ended_) inner_->stop_reading();
}

void TlsStream::write(std::string_view bytes) {
  if (quiet() || bytes.empty()) return;
  Scratch out;
  engine_.send(bytes, out.str());  // held while the handshake runs
  send_to_inner(out.str());
  if (!quiet() && engine_.state() == tls::TlsEngine::State::Failed) end(kStreamProtocolError, "tls: " + engine_.error());
}

std::size_t TlsStream::queued_bytes() const {
  return engine_.held_bytes() + (inner_ ? inner_->queued_bytes() : 0);
}

void TlsStream::close() {
  if (!inner_) return;
  flush_after_handshake_ = false;
  if (closing_ && inner_->closing()) return;
  closing_ = true;
  inner_->close();
}

void TlsStream::close_after_flush() {
  if (closing_ || !inner_) return;
  closing_ = true;
  if (inner_ready_ && engine_.state() == tls::TlsEngine::State::Handshaking && engine_.held_bytes() > 0) {
    // A greeting (or a 554) written at accept: it can only go once the handshake is done. The
    // owner's timer bounds the wait (see the header), and its close() ends it.
    flush_after_handshake_ = true;
    return;
  }
  finish_flush_close();
}

void TlsStream::finish_flush_close() {
  if (engine_.open()) {
    Scratch out;
    engine_.close(out.str());
    send_to_inner(out.str());
  }
  if (inner_ && !inner_->closing()) inner_->close_after_flush();
}

std::string TlsStream::peer_name() const { return inner_ ? inner_->peer_name() : "unknown"; }

void TlsStream::set_nodelay() {
  if (inner_) inner_->set_nodelay();
}

}  // namespace dotgate::net
