// lib/store/store_service.cc — StoreService (per-loop Stores, their linger) and open_service (one
// service per configured backend for the process). See store.h.
#include "lib/store/store.h"

#include <set>
#include <vector>

#include "lib/config/config.h"
#include "lib/store/lmdb_store.h"
#include "lib/store/redis_store.h"

namespace dotgate::store {

// The store the last user gave up, kept by a timer on its loop.
struct StoreService::Linger {
  uv_timer_t timer{};
  LoopStore* store = nullptr;
  uv_loop_t* loop = nullptr;
  std::weak_ptr<State> state;  // the service's map, unless the service is gone (a reload)
};

namespace {
thread_local std::set<void*> t_lingers;  // the lingers on this thread's loop
thread_local bool t_no_linger = false;

}  // namespace

StoreService::~StoreService() = default;

Store* StoreService::acquire(uv_loop_t* loop) {
  Linger* resumed = nullptr;
  LoopStore* store = nullptr;
  {
    std::lock_guard lock(state_->mutex);
    Entry& e = state_->stores[loop];
    if (e.store == nullptr) e.store = make_loop_store(loop);
    if (e.linger) {
      resumed = e.linger;
      e.linger = nullptr;
    }
    ++e.users;
    store = e.store;
  }
  if (resumed) {
    t_lingers.erase(resumed);
    uv_timer_stop(&resumed->timer);
    resumed->store = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&resumed->timer), [](uv_handle_t* h) { delete static_cast<Linger*>(h->data); });
  }
  return store;
}

void StoreService::release(uv_loop_t* loop) {
  LoopStore* to_close = nullptr;
  Linger* l = nullptr;
  bool linger = linger_.count() > 0 && !t_no_linger;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->stores.find(loop);
    if (it == state_->stores.end() || it->second.users == 0) return;
    if (--it->second.users > 0) return;
    if (!linger) {
      to_close = it->second.store;
      state_->stores.erase(it);
    } else {
      l = new Linger;
      l->store = it->second.store;
      l->loop = loop;
      l->state = state_;
      it->second.linger = l;
    }
  }
  if (to_close) {
    to_close->close();
    return;
  }
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  t_lingers.insert(l);
  uv_timer_start(&l->timer, [](uv_timer_t* t) { expire(static_cast<Linger*>(t->data)); },
                 static_cast<std::uint64_t>(linger_.count()), 0);
}

void StoreService::expire(Linger* l) {
  t_lingers.erase(l);
  if (auto state = l->state.lock()) {
    std::lock_guard lock(state->mutex);
    auto it = state->stores.find(l->loop);
    if (it != state->stores.end() && it->second.linger == l) state->stores.erase(it);
  }
  if (l->store) l->store->close();
  l->store = nullptr;
  uv_timer_stop(&l->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&l->timer), [](uv_handle_t* h) { delete static_cast<Linger*>(h->data); });
}

void StoreService::release_lingering() {
  t_no_linger = true;
  std::vector<void*> lingers(t_lingers.begin(), t_lingers.end());
  for (void* l : lingers) expire(static_cast<Linger*>(l));
}

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
