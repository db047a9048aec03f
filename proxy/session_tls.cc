// proxy/session_tls.cc — TLS with the client (RFC 3207): STARTTLS on a starttls listener, the
// facts for the log. Implicit TLS (port 465) is wrapped at accept (Session::start).
//
// The session never reads or writes TLS itself: it swaps its client stream for a net::TlsStream
// over the same connection (lib/net/tls_stream.h) and goes on in plaintext. The rules kept here:
//   - STARTTLS is taken only when every reply before it is out (RFC 2920: it ends a group), and
//     never inside a transaction;
//   - whatever the client sent after the STARTTLS line in plaintext is discarded, never read as
//     commands under TLS (the STARTTLS command injection of 2011, CVE-2011-0411 in Postfix);
//   - after the 220, what the client said before is forgotten: its EHLO (MAIL needs a new one,
//     RFC 3207 4.2) and any transaction state;
//   - the command timer bounds the handshake: a client that never finishes it times out.
// The refusals of an implicit TLS listener are in session_refusal.cc.
#include "lib/log/log.h"
#include "lib/net/tls_stream.h"
#include "proxy/session.h"

namespace dotgate::proxy {

bool Session::check_starttls() {
  if (listener_tls_ != config::ListenerTls::StartTls || !runtime_->server_tls) {
    local_error(make_reply(replies::kTlsNotOffered));
    return false;
  }
  if (tls_started_) {
    local_error(make_reply(replies::kTlsAlreadyActive));
    return false;
  }
  if (tx_.open) {
    local_error(make_reply(replies::kTlsInTransaction));
    return false;
  }
  return true;  // parked: start_tls() once the replies before it are out
}

void Session::start_tls() {
  parked_.reset();
  if (tx_.open) {  // a MAIL pipelined before it was accepted meanwhile
    local_error(make_reply(replies::kTlsInTransaction));
    return;
  }
  std::size_t discarded = client_in_.size() - client_pos_;
  client_in_.clear();
  client_pos_ = 0;
  if (discarded > 0)
    log::info("discarded bytes pipelined after STARTTLS", {{"client", peer_}, {"bytes", discarded}});
  send_reply(make_reply(replies::kTlsReady));  // in plaintext, before the stream changes
  client_ = net::TlsStream::wrap(std::move(client_), runtime_->server_tls, net::TlsStream::Role::Server, this);
  if (!client_) {
    close_all();
    return;
  }
  tls_started_ = true;
  helo_name_.clear();
  helo_verb_ = smtp::Verb::Unknown;
  hello_after_tls_ = true;
  reset_transaction();
  arm_client_timer();
}

bool Session::tls_active() const { return tls_started_; }

std::string Session::tls_summary() const {
  const net::TlsStream* tls = client_ ? net::TlsStream::of(*client_) : nullptr;
  if (!tls || !tls->handshake_done()) return {};
  tls::TlsFacts facts = tls->facts();
  return facts.version + " " + facts.cipher;
}

void Session::on_connected(net::Stream&, int status) {
  if (status != 0 || state_ == State::Closing) return;
  if (refusal_) {
    // The 421 went out with the handshake's last flight: close_notify after it, and the close.
    log::debug("refusal sent over tls", {{"client", peer_}, {"tls", tls_summary()}});
    close_all();
    return;
  }
  if (log::enabled(spdlog::level::debug)) log::debug("tls established", {{"client", peer_}, {"tls", tls_summary()}});
}

}  // namespace dotgate::proxy
