// lib/proxyproto/proxy_addresses.cc — see proxy_addresses.h.
#include "lib/proxyproto/proxy_addresses.h"

namespace dotgate::proxyproto {

std::string endpoint_text(const Address& address) {
  std::string ip = address.ip();
  if (ip.empty()) return {};
  std::string port = std::to_string(address.port);
  if (address.family == Family::Inet6) return "[" + ip + "]:" + port;
  return ip + ":" + port;
}

ConnectionEnds ends_after(const Header& header, const ConnectionEnds& connection) {
  if (header.use_connection_addresses()) return connection;
  ConnectionEnds ends{endpoint_text(header.source), endpoint_text(header.destination)};
  // Cannot happen for a header the parser completed (Inet and Inet6 always print); kept so that
  // a future family without a printable address falls back rather than leave an empty client.
  if (ends.peer.empty() || ends.local.empty()) return connection;
  return ends;
}

}  // namespace dotgate::proxyproto
