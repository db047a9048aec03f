// policies/client_registry.h — one keep-alive http::Client per worker loop, shared by the policy
// instances of one factory (the `http` webhook, `rspamd`), and kept between sessions.
//
// Who calls it: a policy instance, from its session's loop: acquire() on first use, release() once
// (in its destructor) when it acquired. The per-loop sharing and the linger are net::LoopShare's:
// when the last instance on a loop lets go, the Client lingers for `linger` with its idle
// keep-alive connections, so the next session on that worker reuses them instead of paying a new
// TCP connection to the service per message. The share holds the Client's one reference
// (http::Client::retain/release); letting it go, once the linger ends, closes the Client's
// connections (no instance is left then to wait for an answer). A worker that shuts down calls
// net::LoopShare::release_lingering() on its loop thread first.
#pragma once

#include <chrono>
#include <cstddef>

#include <uv.h>

#include "lib/http/client.h"
#include "lib/net/loop_share.h"

namespace dotgate::policy {

class ClientRegistry {
 public:
  static constexpr std::chrono::milliseconds kDefaultLinger{60'000};

  ClientRegistry(http::Url url, std::size_t max_connections, std::chrono::milliseconds linger = kDefaultLinger);

  // The loop's Client, made on first use (or taken back from its linger); the caller must
  // release(loop) exactly once later.
  http::Client* acquire(uv_loop_t* loop) { return share_.acquire(loop); }
  void release(uv_loop_t* loop) { share_.release(loop); }

  // Clients lingering on any loop, for the tests.
  std::size_t lingering() const { return share_.lingering(); }

 private:
  net::LoopShareOf<http::Client> share_;
};

}  // namespace dotgate::policy
