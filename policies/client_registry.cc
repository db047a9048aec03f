// policies/client_registry.cc — see client_registry.h.
#include "policies/client_registry.h"

namespace dotgate::policy {

ClientRegistry::ClientRegistry(http::Url url, std::size_t max_connections, std::chrono::milliseconds linger)
    : share_(
          [url = std::move(url), max_connections](uv_loop_t* loop) {
            auto* client = new http::Client(loop, url, max_connections);
            client->retain();  // the share's reference
            return client;
          },
          [](http::Client* client) { client->release(); },  // the last reference closes its connections
          linger) {}

}  // namespace dotgate::policy
