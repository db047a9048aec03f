// lib/store/redis_store.h — the shared state store: Redis through hiredis's async API and its
// libuv adapter, one connection per worker loop, so that several dotgate replicas share one view.
//
// Per loop (RedisLoopStore): one redisAsyncContext attached to the loop. Commands are written as
// they come (hiredis buffers them; several in flight are pipelined on the one connection) and
// answered in order. Expiry is Redis's own: SET key value EX ttl; increment is one EVAL of INCR +
// EXPIRE (atomic, and one round trip). Keys get the configured prefix.
// What fails, and how a caller is never stuck (hiredis 0.14 has no timeouts of its own):
//   - connect: connect_timeout (a timer); a refused or timed-out connect fails what was queued;
//   - each command: command_timeout, checked on the oldest unanswered one (answers come in order):
//     past it the connection is dropped, everything in flight fails with "timeout";
//   - while there is no connection, commands fail at once with "unavailable" (posted, never inside
//     the call), and a new connection is tried every reconnect_interval (the first at once when
//     a command arrives after the interval);
//   - a connection that drops fails what was in flight ("disconnected").
// Connection state changes are logged once each (lost, back), not per command.
// Lifetime: close() drops every callback, frees the context (hiredis closes its poll handle) and
// the timer, and frees itself after the timer's close callback.
#pragma once

#include <chrono>
#include <memory>

#include "lib/config/store_config.h"
#include "lib/store/store.h"

namespace dotgate::store {

std::shared_ptr<StoreService> make_redis_service(const config::RedisStoreConfig& config, std::chrono::milliseconds linger);

}  // namespace dotgate::store
