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
// And the refusals of an implicit TLS listener (max_connections, draining): as Postfix's smtpd
// does in wrapper mode, the handshake first, then the 421 over TLS, so that the client can read
// why and retries later instead of logging a TLS error. Each costs a handshake, which is what
// the overload is short of: the handshake is bounded (min(command_timeout, 10 s)), and past
// kMaxTlsRefusals refusals in handshake on one worker more are closed without a reply (Postfix
// closes without one when its TLS handshake rate limit refuses).
#include <algorithm>
#include <chrono>

#include "lib/log/log.h"
#include "lib/net/tls_stream.h"
#include "proxy/session.h"

namespace dotgate::proxy {

namespace {

// A refused client on an implicit TLS listener holds ~15 KiB (TLS state) for its handshake's
// length; a flood of connections must not turn that into unbounded memory. Per worker thread:
// sessions never leave the loop (and the thread) that made them.
constexpr std::size_t kMaxTlsRefusals = 64;
thread_local std::size_t tls_refusals_in_handshake = 0;
constexpr std::chrono::milliseconds kMaxRefusalHandshake{10'000};

}  // namespace

void Session::refuse_over_tls(std::string_view already_read) {
  if (tls_refusals_in_handshake >= kMaxTlsRefusals) {
    log::info("refused connection closed without a reply: too many refusals in TLS handshake",
              {{"client", peer_}, {"in_handshake", tls_refusals_in_handshake}});
    close_all();
    return;
  }
  client_ = net::TlsStream::wrap(std::move(client_), runtime_->server_tls, net::TlsStream::Role::Server, this);
  if (!client_) {
    close_all();
    return;
  }
  tls_started_ = true;
  ++tls_refusals_in_handshake;
  counted_tls_refusal_ = true;
  client_->start_reading();
  send_reply(make_reply(*refusal_));  // held by the TLS stream until the handshake is done
  auto bound = std::min<std::chrono::milliseconds>(config_.smtp.command_timeout, kMaxRefusalHandshake);
  client_timer_.arm(&Session::on_client_timer, static_cast<std::uint64_t>(bound.count()));
  if (!already_read.empty()) static_cast<net::TlsStream*>(client_.get())->receive_early(already_read);
}

void Session::end_tls_refusal() {
  if (!counted_tls_refusal_) return;
  counted_tls_refusal_ = false;
  --tls_refusals_in_handshake;
}

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
