// lib/smtp/forwarded_client.cc — see forwarded_client.h. Pure; the replies are Postfix smtpd's
// (src/smtpd/smtpd.c, xforward_cmd), so the Postfix in front logs what it would log behind Postfix.
#include "lib/smtp/forwarded_client.h"

namespace dotgate::smtp {

bool unavailable(const std::optional<std::string>& value) {
  return !value || *value == kUnavailable || *value == kTempUnavailable || value->empty();
}

Reply ForwardedClient::command(std::string_view arguments, bool in_transaction) {
  // Postfix's order: the transaction first (an XFORWARD there would change the client of a
  // transaction already judged), then the syntax.
  if (in_transaction) return Reply::make(503, "5.5.1", "Error: MAIL transaction in progress");
  XforwardParse parsed = parse_xforward(arguments);
  if (!parsed.ok()) {
    // "501 5.5.4 text": the code, then the rest as the reply's one line.
    const std::string& e = parsed.error;
    return Reply{std::stoi(e.substr(0, 3)), {e.size() > 4 ? e.substr(4) : std::string()}};
  }
  if (!attributes_) {
    // The first XFORWARD: everything it does not name is unknown, not the connection's.
    ClientIdentity all;
    std::string u(kUnavailable);
    all.name = all.addr = all.port = all.proto = all.helo = all.ident = all.source = u;
    attributes_ = std::move(all);
  }
  merge_identity(parsed.attributes, *attributes_);
  return Reply::make(250, "2.0.0", "Ok");
}

std::string ForwardedClient::client_address() const {
  if (!attributes_ || unavailable(attributes_->addr)) return {};
  const std::string& addr = *attributes_->addr;
  std::string host = addr.find(':') != std::string::npos ? "[" + addr + "]" : addr;
  return unavailable(attributes_->port) ? host : host + ":" + *attributes_->port;
}

std::string ForwardedClient::helo() const {
  if (!attributes_ || unavailable(attributes_->helo)) return {};
  return *attributes_->helo;
}

}  // namespace dotgate::smtp
