// policies/client_registry.h — one keep-alive http::Client per worker loop, shared by the policy
// instances of one factory (the `http` webhook, `rspamd`), and kept between sessions.
//
// Who calls it: a policy instance, from its session's loop: acquire() on first use, release() once
// (in its destructor) when it acquired. Who owns what: each Client is reference counted
// (http::Client::retain/release). When the last instance on a loop lets go, the Client lingers
// for `linger` with its idle keep-alive connections, so the next session on that worker (one
// message per connection is what an MX mostly sees) reuses them instead of paying a new TCP
// connection to the service per message; an acquire() in that time takes it back. The linger's
// timer belongs to the loop; when it fires the Client is released and closes its connections.
// A worker that shuts down calls release_lingering() on its loop thread first, so its loop ends
// with nothing of ours open; from then on that thread lets Clients go at once. A registry
// destroyed while Clients linger (a reload) leaves them to their timers.
// The map is shared by worker threads (the factory is), so it is locked; a Client itself is only
// ever touched from its own loop's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include <uv.h>

#include "lib/http/client.h"

namespace dotgate::policy {

class ClientRegistry {
 public:
  static constexpr std::chrono::milliseconds kDefaultLinger{60'000};

  ClientRegistry(http::Url url, std::size_t max_connections, std::chrono::milliseconds linger = kDefaultLinger);
  ClientRegistry(const ClientRegistry&) = delete;
  ClientRegistry& operator=(const ClientRegistry&) = delete;

  // The loop's Client, made on first use (or taken back from its linger); the caller must
  // release(loop) exactly once later.
  http::Client* acquire(uv_loop_t* loop);
  void release(uv_loop_t* loop);

  // Every Client lingering on the calling thread's loop is released now, and later last
  // releases on this thread do not linger. For a worker's shutdown, from its loop thread.
  static void release_lingering();

  // Clients lingering on any loop, for the tests.
  std::size_t lingering() const;

 private:
  struct Linger;
  struct Entry {
    http::Client* client = nullptr;
    std::size_t users = 0;
    Linger* linger = nullptr;  // set while no instance holds the client
  };
  struct State {
    mutable std::mutex mutex;
    std::map<uv_loop_t*, Entry> clients;
  };
  static void expire(Linger* linger);
  static void close_linger(Linger* linger);

  const http::Url url_;
  const std::size_t max_connections_;
  const std::chrono::milliseconds linger_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace dotgate::policy
