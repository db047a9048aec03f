// proxy/runtime.cc — see runtime.h.
#include "proxy/runtime.h"

#include "lib/net/tcp_connection.h"

namespace dotgate::proxy {

std::shared_ptr<const Runtime> Runtime::build(config::Config config, const std::atomic<bool>* maintenance) {
  auto rt = std::make_shared<Runtime>();
  rt->policies = policy::PolicySet::build(config);
  rt->replies = ReplyRewriter(config.rewrite.rules, maintenance);
  if (config.tls.enabled) rt->server_tls = tls::TlsContext::server(config.tls);  // throws TlsError
  if (config.downstream.starttls != config::DownstreamStartTls::Off)
    rt->downstream_tls = tls::TlsContext::client(config.downstream.tls);
  if (net::make_sockaddr(config.downstream.endpoint.address, config.downstream.endpoint.port,
                         &rt->downstream_address) != 0)
    throw config::ConfigError("downstream.address: not an IP address");
  rt->config = std::move(config);
  return rt;
}

}  // namespace dotgate::proxy
