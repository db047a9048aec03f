// policies/client_registry.h — one keep-alive http::Client per worker loop, shared by the policy
// instances of one factory (the `http` webhook, `rspamd`).
//
// Who calls it: a policy instance, from its session's loop: acquire() on first use, release() once
// (in its destructor) when it acquired. Who owns what: the registry owns nothing but the map; each
// Client is reference counted (http::Client::retain/release) and the registry holds it only while
// some instance on that loop does. After the last release on a loop the Client closes its
// connections and frees itself from that loop, so a worker's loop ends with nothing of ours open.
// The map is shared by worker threads (the factory is), so it is locked; a Client itself is only
// ever touched from its own loop's thread.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <utility>

#include <uv.h>

#include "lib/http/client.h"

namespace dotgate::policy {

class ClientRegistry {
 public:
  ClientRegistry(http::Url url, std::size_t max_connections)
      : url_(std::move(url)), max_connections_(max_connections) {}
  ClientRegistry(const ClientRegistry&) = delete;
  ClientRegistry& operator=(const ClientRegistry&) = delete;

  // The loop's Client, made on first use; the caller must release(loop) exactly once later.
  http::Client* acquire(uv_loop_t* loop);
  void release(uv_loop_t* loop);

 private:
  struct Entry {
    http::Client* client = nullptr;
    std::size_t users = 0;
  };
  const http::Url url_;
  const std::size_t max_connections_;
  std::mutex mutex_;
  std::map<uv_loop_t*, Entry> clients_;
};

}  // namespace dotgate::policy
