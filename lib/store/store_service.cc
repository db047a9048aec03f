// lib/store/store_service.cc — StoreService (per-loop Stores through net::LoopShare) and open_service (one
// service per configured backend for the process). See store.h.
#include "lib/store/store.h"

#include <vector>

#include "lib/config/config.h"
#include "lib/store/lmdb_store.h"
#include "lib/store/redis_store.h"

namespace dotgate::store {

StoreService::StoreService(std::chrono::milliseconds linger)
    : share_([this](uv_loop_t* loop) { return make_loop_store(loop); },  // under the share's lock, on first use
             [](LoopStore* store) { store->close(); }, linger) {}

StoreService::~StoreService() = default;

Store* StoreService::acquire(uv_loop_t* loop) { return share_.acquire(loop); }

// ---- one service per backend configuration, for the process ----------------------------------

namespace {
struct Services {
  std::mutex mutex;
  // Keyed by the backend's own config: a reload with the same "store" object gets the same one.
  std::vector<std::pair<config::StoreConfig, std::weak_ptr<StoreService>>> open;
};
Services& services() {
  static Services* s = new Services;  // never destroyed: a worker may let go of one at exit
  return *s;
}
}  // namespace

std::shared_ptr<StoreService> open_service(const config::StoreConfig& config, std::chrono::milliseconds linger) {
  Services& s = services();
  std::lock_guard lock(s.mutex);
  for (auto it = s.open.begin(); it != s.open.end();) {
    auto service = it->second.lock();
    if (!service) {
      it = s.open.erase(it);
      continue;
    }
    if (it->first == config) return service;
    // Another config on the same LMDB directory (a reload that changed map_size): LMDB allows
    // one environment per file and process, so the running one is kept.
    if (config.backend == config::StoreConfig::Backend::Lmdb && it->first.backend == config.backend &&
        it->first.lmdb.path == config.lmdb.path)
      return service;
    ++it;
  }
  std::shared_ptr<StoreService> service;
  if (config.backend == config::StoreConfig::Backend::Lmdb) {
    service = open_lmdb_service(config.lmdb, linger);  // throws ConfigError
  } else {
    service = make_redis_service(config.redis, linger);
  }
  s.open.emplace_back(config, service);
  return service;
}

}  // namespace dotgate::store
