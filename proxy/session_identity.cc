// proxy/session_identity.cc — who the client is, when the peer speaks for someone else: XFORWARD
// from a trusted peer (dotgate as a Postfix smtpd_proxy_filter), received, used, passed on.
//
// The peer of a connection in smtp.xforward_from (the Postfix in front) is offered XFORWARD in
// dotgate's EHLO reply (on_command_reply) and may send it; anyone else gets 502 as for any
// command not offered (check()). What the peer forwards (smtp::ForwardedClient: Postfix's rules,
// its replies) is the client until the transaction ends (finish_transaction, RSET, HELO/EHLO):
//   - for the policies (envelope(): client_address, helo), the split's client classes
//     (client_ip()), and the transaction's log line;
//   - for the MTA, before each MAIL (forward_identity): XFORWARD when the MTA announces it (its
//     replies are dotgate's, never the client's: internal slots), or, with downstream.xclient, a
//     fresh downstream connection whose XCLIENT names the forwarded client (the one open said
//     XCLIENT for the Postfix in front, and an MTA judges a second XCLIENT by the first one's
//     address: Postfix refuses it).
// Why XFORWARD changes nothing of the client's trust here: dotgate's own decisions take no
// client as trusted; what the forwarded address changes is what the policies key on.
// Owns nothing but through the Session's members; every call completes at once.
#include "lib/log/log.h"
#include "proxy/session.h"

namespace dotgate::proxy {

std::string Session::peer_ip() const {
  // peer_ is "192.0.2.1:port" or "[2001:db8::1]:port".
  if (!peer_.empty() && peer_.front() == '[') return peer_.substr(1, peer_.find(']') - 1);
  return peer_.substr(0, peer_.rfind(':'));
}

bool Session::xforward_trusted() const {
  return !config_.smtp.xforward_from.empty() && config_.smtp.xforward_from.contains(peer_ip());
}

std::string Session::client_address() const { return forwarded_.active() ? forwarded_.client_address() : peer_; }

std::string Session::client_helo() const { return forwarded_.active() ? forwarded_.helo() : helo_name_; }

void Session::answer_xforward(const smtp::Command& cmd) {
  // In a transaction: accepted downstream, or a MAIL still on its way there (pipelined ahead).
  bool mail_pending = false;
  for (const auto& p : pending_) mail_pending = mail_pending || (p.verb == smtp::Verb::Mail && !p.ready);
  smtp::Reply reply = forwarded_.command(cmd.argument, tx_.open || mail_pending);
  if (reply.klass() != 2) {
    local_error(reply);
    return;
  }
  if (log::enabled(spdlog::level::debug))
    log::debug("xforward", {{"client", peer_}, {"forwarded", client_address()}, {"helo", client_helo()}});
  queue_local(reply);
}

bool Session::forward_identity(smtp::Command& cmd) {
  if (!forwarded_.active()) return false;
  auto park_again = [&] {
    parked_ = ParkedCommand{std::move(cmd), true, false};
    identity_forwarded_ = true;
    return true;
  };
  // Only at rest: a reconnection would lose the replies still owed on this connection.
  if (config_.downstream.xclient && link_.identity_sent() && link_.in_flight() == 0) {
    if (const smtp::ClientIdentity* sent = link_.xclient_identity(); sent && *sent == client_identity()) return false;
    // This connection's XCLIENT named someone else (the peer itself, or an earlier transaction's
    // forwarded client): a fresh one, XCLIENT first, the peer's EHLO replayed.
    log::debug("forwarded client: fresh downstream connection for its XCLIENT", {{"client", peer_}});
    abort_downstream();
    return park_again();
  }
  const smtp::EhloCapabilities& caps = link_.capabilities();
  if (!caps.xforward) return false;  // the MTA logs the peer; the policies still saw the client
  std::vector<std::string> lines = smtp::build_xforward(*forwarded_.attributes(), caps.xforward_attributes);
  if (lines.empty()) return false;
  for (auto& line : lines) {
    PendingReply slot;
    slot.verb = smtp::Verb::Xforward;
    slot.from_downstream = true;
    slot.internal = true;
    slot.generation = tx_generation_;
    pending_.push_back(std::move(slot));
    line += "\r\n";
    link_.send_command(line);
  }
  // Without PIPELINING the MAIL waits for the last XFORWARD's reply (can_take_command).
  return park_again();
}

void Session::identity_reply(PendingReply& slot, const smtp::Reply& reply) {
  slot.ready = true;
  // XFORWARD only changes what the MTA logs: a refusal costs the audit trail, not the message.
  if (reply.klass() != 2)
    log::warn("downstream refused XFORWARD", {{"client", peer_}, {"code", reply.code},
                                              {"text", reply.lines.empty() ? "" : reply.lines.front()}});
}

}  // namespace dotgate::proxy
