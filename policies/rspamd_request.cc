// policies/rspamd_request.cc — see rspamd_request.h.
#include "policies/rspamd_request.h"

#include <arpa/inet.h>

#include "lib/http/header_value.h"

namespace dotgate::policy {

namespace {

bool ip_literal(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

std::string rspamd_client_ip(std::string_view peer) {
  std::string candidate;
  if (!peer.empty() && peer.front() == '[') {
    auto close = peer.find(']');
    if (close == std::string_view::npos) return {};
    candidate = std::string(peer.substr(1, close - 1));
  } else if (peer.find(':') != peer.rfind(':')) {
    candidate = std::string(peer);  // a bare IPv6 address: several colons, no port
  } else {
    candidate = std::string(peer.substr(0, peer.find(':')));
  }
  return ip_literal(candidate) ? candidate : std::string();
}

std::vector<std::pair<std::string, std::string>> rspamd_request_headers(const Envelope& envelope) {
  std::vector<std::pair<std::string, std::string>> h;
  // rspamd reads an SMTP path; "<>" is the null sender of a bounce.
  h.emplace_back("From", http::path_header_value(envelope.mail_from));
  for (const auto& r : envelope.recipients) h.emplace_back("Rcpt", http::path_header_value(r));
  if (auto ip = rspamd_client_ip(envelope.client_address); !ip.empty()) h.emplace_back("IP", ip);
  if (!envelope.helo.empty()) h.emplace_back("Helo", http::header_value(envelope.helo));
  if (!envelope.queue_id.empty()) h.emplace_back("Queue-Id", http::header_value(envelope.queue_id));
  return h;
}

}  // namespace dotgate::policy
