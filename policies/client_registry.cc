// policies/client_registry.cc — see client_registry.h.
#include "policies/client_registry.h"

namespace dotgate::policy {

http::Client* ClientRegistry::acquire(uv_loop_t* loop) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& entry = clients_[loop];
  if (entry.client == nullptr) entry.client = new http::Client(loop, url_, max_connections_);
  ++entry.users;
  entry.client->retain();
  return entry.client;
}

void ClientRegistry::release(uv_loop_t* loop) {
  http::Client* client = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = clients_.find(loop);
    if (it == clients_.end()) return;
    client = it->second.client;
    if (--it->second.users == 0) clients_.erase(it);
  }
  client->release();  // outside the lock, on this loop's thread; the last one closes the pool
}

}  // namespace dotgate::policy
