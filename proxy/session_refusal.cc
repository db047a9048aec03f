// proxy/session_refusal.cc — a connection the worker will not serve (over smtp.max_connections,
// or while dotgate drains): accepted, told why with one 421, closed. Called by the Worker at
// accept (Session::refuse) instead of Session::start; the session lives only for that reply.
//
// On a plain or starttls listener the 421 goes out at once in plain text. On an implicit TLS
// listener (port 465 style) plain text is garbage to a client that opens with its ClientHello, so,
// as Postfix's smtpd does in wrapper mode, the TLS handshake comes first and the 421 goes over
// TLS, then close_notify: the client reads why and retries later instead of logging a TLS error.
// Each costs a handshake, which is what an overloaded server is short of: the handshake is
// bounded (min(command_timeout, 10 s); then closed, nothing written), and past kMaxTlsRefusals
// refusals in handshake on one worker further ones are closed without a reply (Postfix closes
// without one when its TLS handshake rate limit refuses). On a proxy_protocol listener the PROXY
// header is read first (session_proxy_header.cc), as it precedes TLS; greet() then comes here.
// How it ends: close_all(), from on_connected (the reply is out), the client timer, the client's
// end, or shut_down(); the per-worker count is given back there (end_tls_refusal).
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

void Session::refuse(uv_stream_t* server, const config::Endpoint& listener, const ReplySpec& reply) {
  auto* tcp = net::TcpConnection::create(host_.loop(), this, host_.read_buffer());
  client_.reset(tcp);
  counters_.add(counters_.connections_refused);
  if (tcp->accept_from(server) != 0) {
    close_all();
    return;
  }
  peer_ = client_->peer_name();
  log::info("connection refused", {{"client", peer_}, {"reply", reply.code}});
  if (listener.tls == config::ListenerTls::Implicit && runtime_->server_tls) {
    // A 421 in plain text is garbage to a client that starts with its ClientHello: the refusal
    // goes over TLS (refuse_over_tls), after the PROXY header where the listener expects one.
    listener_ = &listener;
    listener_tls_ = listener.tls;
    refusal_ = &reply;
    if (listener.proxy_protocol) {
      local_ = tcp->local_name();
      start_proxy_header();  // greet() once the header named the client, which refuses over TLS
      return;
    }
    refuse_over_tls();
    return;
  }
  send_reply(make_reply(reply));
  close_all();
}

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

}  // namespace dotgate::proxy
