// policies/client_registry.cc — see client_registry.h.
#include "policies/client_registry.h"

#include <set>
#include <vector>

namespace dotgate::policy {

// The Client's reference that the last instance gave up, held by a timer on the Client's loop.
struct ClientRegistry::Linger {
  uv_timer_t timer{};
  http::Client* client = nullptr;
  uv_loop_t* loop = nullptr;
  std::weak_ptr<State> state;  // the registry's map, unless the registry is gone (a reload)
};

namespace {
// The lingers on this thread's loop (a worker's loop runs on one thread), for release_lingering().
thread_local std::set<void*> t_lingers;
thread_local bool t_no_linger = false;
}  // namespace

void ClientRegistry::close_linger(Linger* l) {
  // The timer's memory is the Linger's: it goes once libuv is done with the handle.
  uv_close(reinterpret_cast<uv_handle_t*>(&l->timer), [](uv_handle_t* h) { delete static_cast<Linger*>(h->data); });
}

ClientRegistry::ClientRegistry(http::Url url, std::size_t max_connections, std::chrono::milliseconds linger)
    : url_(std::move(url)), max_connections_(max_connections), linger_(linger) {}

http::Client* ClientRegistry::acquire(uv_loop_t* loop) {
  Linger* resumed = nullptr;
  http::Client* client = nullptr;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto& entry = state_->clients[loop];
    if (entry.client == nullptr) {
      entry.client = new http::Client(loop, url_, max_connections_);
      entry.client->retain();
    } else if (entry.linger) {
      resumed = entry.linger;  // its reference passes to this instance
      entry.linger = nullptr;
    } else {
      entry.client->retain();
    }
    ++entry.users;
    client = entry.client;
  }
  if (resumed) {
    t_lingers.erase(resumed);
    uv_timer_stop(&resumed->timer);
    close_linger(resumed);
  }
  return client;
}

void ClientRegistry::release(uv_loop_t* loop) {
  http::Client* client = nullptr;
  bool linger = linger_.count() > 0 && !t_no_linger;
  Linger* l = nullptr;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto it = state_->clients.find(loop);
    if (it == state_->clients.end() || it->second.users == 0) return;
    client = it->second.client;
    if (--it->second.users > 0) {
      client->release();  // not the last reference: nothing closes
      return;
    }
    if (!linger) {
      state_->clients.erase(it);
    } else {
      l = new Linger;
      l->client = client;
      l->loop = loop;
      l->state = state_;
      it->second.linger = l;
    }
  }
  if (!l) {
    client->release();  // outside the lock, on this loop's thread; the last one closes the pool
    return;
  }
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  t_lingers.insert(l);
  uv_timer_start(&l->timer, [](uv_timer_t* t) { expire(static_cast<Linger*>(t->data)); },
                 static_cast<std::uint64_t>(linger_.count()), 0);
}

void ClientRegistry::expire(Linger* l) {
  t_lingers.erase(l);
  if (auto state = l->state.lock()) {
    std::lock_guard<std::mutex> lock(state->mutex);
    auto it = state->clients.find(l->loop);
    if (it != state->clients.end() && it->second.linger == l) state->clients.erase(it);
  }
  l->client->release();  // the linger's reference was the last: the Client closes its connections
  l->client = nullptr;
  uv_timer_stop(&l->timer);
  close_linger(l);
}

void ClientRegistry::release_lingering() {
  t_no_linger = true;
  std::vector<void*> lingers(t_lingers.begin(), t_lingers.end());
  for (void* l : lingers) expire(static_cast<Linger*>(l));  // each erases itself from t_lingers
}

std::size_t ClientRegistry::lingering() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  std::size_t n = 0;
  for (const auto& [loop, entry] : state_->clients)
    if (entry.linger) ++n;
  return n;
}

}  // namespace dotgate::policy
