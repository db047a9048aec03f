// proxy/session_proxy_header.cc — a Session's first step on a proxy_protocol listener: the PROXY
// protocol header (haproxy's proxy-protocol.txt, v1 and v2) that tells it who the client is.
//
// Called from Session::start() (start_proxy_header), on_data / on_end and the client timer while
// the state is ProxyHeader. What it owns: the parser (lib/proxyproto), only until the header is
// complete, and the balancer's address (proxied_by_) for the logs. How it ends: greet(), the
// session as on any listener, with peer_ and local_ naming the header's source and destination;
// or close_all() with nothing written to the client and no downstream connection ever opened.
//
// Why it is strict (the spec, section 5): the header decides the address that the policies
// (envelope().client_address, client_ip()), XCLIENT and the MTA's own checks believe. So:
//   - only a peer in the listener's proxy_protocol_from may send one; anyone else is closed
//     before a byte is read, since whatever it sends would be believed;
//   - a header that does not parse, or passes the parser's caps, closes the connection: the
//     spec forbids guessing, and relaying its bytes as SMTP would hand them to the MTA;
//   - the whole header must arrive within proxy_protocol_timeout from the accept (not from the
//     last byte: a trickle of one byte every few seconds would otherwise hold the slot for hours).
// Bytes that follow the header in the same read are the client's: on a plain or STARTTLS listener
// sent before any greeting, an early talker refused as anywhere (554) without a downstream
// connection; on an implicit TLS listener its ClientHello, for the TLS layer that greet() puts on
// the stream after the header (the header precedes TLS, as balancers send it).
#include "lib/log/log.h"
#include "lib/proxyproto/proxy_addresses.h"
#include "proxy/session.h"

namespace dotgate::proxy {

void Session::start_proxy_header() {
  if (!listener_->proxy_protocol_from.contains(client_ip())) {
    refuse_proxy_header(metrics::ProxyHeaderRefusal::Untrusted, "peer not in proxy_protocol_from");
    return;
  }
  proxied_by_ = peer_;
  proxy_header_ = std::make_unique<proxyproto::ProxyHeaderParser>();
  enter_state(State::ProxyHeader);
  client_->start_reading();
  arm_client_timer();  // proxy_protocol_timeout, not pushed back by the header's bytes
}

void Session::on_proxy_header_data(std::string_view data) {
  proxyproto::Result r = proxy_header_->feed(data);
  if (r.kind == proxyproto::Result::Kind::NeedMore) return;
  if (r.kind == proxyproto::Result::Kind::Error) {
    refuse_proxy_header(r.too_long ? metrics::ProxyHeaderRefusal::Oversized : metrics::ProxyHeaderRefusal::Malformed,
                        r.error);
    return;
  }
  const proxyproto::Header& h = r.header;
  int version = h.version == proxyproto::Version::V1 ? 1 : 2;
  proxyproto::ConnectionEnds ends = proxyproto::ends_after(h, {peer_, local_});
  peer_ = std::move(ends.peer);
  local_ = std::move(ends.local);
  metrics::count_proxy_header_accepted(version);
  log::info("PROXY header", {{"client", peer_},
                             {"proxy", proxied_by_},
                             {"version", version},
                             {"command", h.command == proxyproto::Command::Local ? "LOCAL" : "PROXY"},
                             {"addresses", h.use_connection_addresses() ? "connection" : "header"}});
  std::string_view rest = data.substr(r.consumed);  // `data` outlives the parser: a view is fine
  proxy_header_.reset();
  enter_state(State::Greeting);
  // What followed the header in this read is the client's: TLS's first bytes on an implicit TLS
  // listener, else an early talker (the greeting has not been sent). greet() says which.
  greet(rest);
}

void Session::refuse_proxy_header(metrics::ProxyHeaderRefusal why, std::string_view detail) {
  metrics::count_proxy_header_refused(why);
  auto level = why == metrics::ProxyHeaderRefusal::Untrusted ? spdlog::level::warn : spdlog::level::info;
  log::event(level, "PROXY header refused, connection closed",
             {{"client", peer_}, {"reason", metrics::proxy_header_refusal_name(why)}, {"detail", std::string(detail)}});
  proxy_header_.reset();
  close_all();  // nothing written: no greeting, no reply, no downstream connection
}

}  // namespace dotgate::proxy
