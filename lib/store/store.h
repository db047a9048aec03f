// lib/store/store.h — the state store: a small asynchronous key-value interface with expiry, for
// state that outlives a session and may be shared between workers and replicas (greylisting).
//
// Two layers:
//   StoreService — one per configured backend for the whole process (open_service), shared by
//     every worker thread and by the policy factories of successive configs (a SIGHUP that keeps
//     the "store" object keeps the service: an LMDB environment must be opened once per process).
//     It hands out one Store per event loop: acquire(loop) on first use, release(loop) once later.
//   Store — one loop's handle. Called only from that loop's thread. Every callback runs later on
//     that loop, never inside the call that asked (libuv's rule: no re-entrancy), exactly once,
//     unless the Store is closed first (then never: nobody holds it any more).
// Operations (what greylisting needs, and what both backends do natively):
//   get(key)                 -> Ok + value, Missing (absent or expired), Error
//   set(key, value, ttl)     -> Ok, Error        the entry expires `ttl` seconds from now
//   increment(key, ttl)      -> Ok + new count   absent or expired counts as 0; the expiry moves
//                                                to `ttl` seconds from now (Redis INCR + EXPIRE)
// An Error carries a short reason for metrics and logs ("timeout", "unavailable", "lmdb", ...);
// what it means for mail is the caller's business (a policy's on_error).
// When the last user of a loop's Store lets go it lingers (kDefaultLinger) so the next session on
// that worker finds the connection (Redis) warm (net::LoopShare); a worker that shuts down calls
// net::LoopShare::release_lingering() on its loop thread, so its loop ends with nothing of ours open.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <uv.h>

#include "lib/config/store_config.h"
#include "lib/net/loop_share.h"

namespace dotgate::store {

enum class Status { Ok, Missing, Error };

struct Result {
  Status status = Status::Missing;
  std::string value;       // get: the value
  std::int64_t count = 0;  // increment: the count after it
  std::string error;       // Error: why, one word ("timeout", "unavailable", "lmdb", "protocol")
  std::string detail;      // Error: more, for the log
  bool failed() const { return status == Status::Error; }
  static Result ok() { return {Status::Ok, {}, 0, {}, {}}; }
  static Result missing() { return {}; }
  static Result fail(std::string error, std::string detail = {}) {
    return {Status::Error, {}, 0, std::move(error), std::move(detail)};
  }
};

using Callback = std::function<void(Result)>;

class Store {
 public:
  virtual ~Store() = default;
  // `done` may be empty for set and increment (nothing waits for the answer).
  virtual void get(const std::string& key, Callback done) = 0;
  virtual void set(const std::string& key, const std::string& value, std::uint32_t ttl_seconds, Callback done) = 0;
  virtual void increment(const std::string& key, std::uint32_t ttl_seconds, Callback done) = 0;
};

// A Store that belongs to one loop and can be closed: what a backend makes per loop.
class LoopStore : public Store {
 public:
  // Stops every delivery at once and closes its handles; the object frees itself after the last
  // close callback. Called on the loop's thread, never from inside one of its own callbacks'
  // callers (the service calls it from a timer or from release()).
  virtual void close() = 0;
};

class StoreService {
 public:
  static constexpr std::chrono::milliseconds kDefaultLinger{60'000};

  virtual ~StoreService();
  StoreService(const StoreService&) = delete;
  StoreService& operator=(const StoreService&) = delete;

  // The loop's Store, made on first use (or taken back from its linger). From the loop's thread;
  // the caller must release(loop) exactly once later, from the same thread.
  Store* acquire(uv_loop_t* loop);
  void release(uv_loop_t* loop) { share_.release(loop); }
  virtual std::string_view backend() const = 0;  // "lmdb", "redis": the metrics' label

 protected:
  explicit StoreService(std::chrono::milliseconds linger);
  virtual LoopStore* make_loop_store(uv_loop_t* loop) = 0;

 private:
  net::LoopShareOf<LoopStore> share_;
};

// The process's service for `config` (made on first use, shared while anyone holds it). An
// LMDB directory that cannot be opened throws config::ConfigError naming "store.lmdb.path".
// `linger`: for the tests; 0 closes a loop's Store as soon as its last user lets go.
std::shared_ptr<StoreService> open_service(const config::StoreConfig& config,
                                           std::chrono::milliseconds linger = StoreService::kDefaultLinger);

}  // namespace dotgate::store
