// test/unit/store/store_test.cc — the state store backends on a real loop: LMDB in a temporary
// directory, Redis against a real redis-server the test starts on a loopback port. What each
// must show: answers come later on the loop (never inside the call), get/set/increment mean the
// same on both, entries expire, counts from several threads add up (LMDB's one writer), state
// survives reopening (LMDB), a dead or stalled Redis fails commands within the timeouts and a
// restarted one is used again, and every loop closes with nothing of ours left open.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "lib/config/config.h"
#include "lib/store/lmdb_store.h"
#include "lib/store/store.h"
#include "test/unit/store/store_test_util.h"

using namespace dotgate;
using namespace std::chrono_literals;
using store_test::run_until;

namespace {

config::StoreConfig lmdb_config(const std::string& dir) {
  config::StoreConfig c;
  c.backend = config::StoreConfig::Backend::Lmdb;
  c.lmdb.path = dir + "/db";
  c.lmdb.map_size = 16ull << 20;
  return c;
}

config::StoreConfig redis_config(int port) {
  config::StoreConfig c;
  c.backend = config::StoreConfig::Backend::Redis;
  c.redis.port = port;
  c.redis.prefix = "test:";
  c.redis.command_timeout = 300ms;
  c.redis.connect_timeout = 300ms;
  c.redis.reconnect_interval = 100ms;
  return c;
}

// One asked operation's answer, with a flag that says it came later (not inside the call).
struct Answer {
  bool got = false;
  store::Result result;
  store::Callback callback() {
    return [this](store::Result r) {
      got = true;
      result = std::move(r);
    };
  }
};

store::Result wait(uv_loop_t* loop, Answer& a, std::chrono::milliseconds timeout = 3000ms) {
  REQUIRE(run_until(loop, [&] { return a.got; }, timeout));
  return a.result;
}

// The operations every backend must do alike.
void common_semantics(uv_loop_t* loop, store::Store& s) {
  Answer set, get, missing, inc1, inc2;
  s.set("k1", "value one", 60, set.callback());
  CHECK_FALSE(set.got);  // never inside the call
  CHECK(wait(loop, set).status == store::Status::Ok);
  s.get("k1", get.callback());
  CHECK_FALSE(get.got);
  auto r = wait(loop, get);
  CHECK(r.status == store::Status::Ok);
  CHECK(r.value == "value one");
  s.get("absent", missing.callback());
  CHECK(wait(loop, missing).status == store::Status::Missing);
  s.increment("count", 60, inc1.callback());
  s.increment("count", 60, inc2.callback());
  CHECK(wait(loop, inc1).count == 1);
  CHECK(wait(loop, inc2).count == 2);
  Answer counted;
  s.get("count", counted.callback());
  CHECK(wait(loop, counted).value == "2");
  // Expiry: a 1 s entry is gone after it (both backends count whole seconds).
  Answer short_set, later;
  s.set("short", "x", 1, short_set.callback());
  wait(loop, short_set);
  std::this_thread::sleep_for(2100ms);
  s.get("short", later.callback());
  CHECK(wait(loop, later).status == store::Status::Missing);
}

}  // namespace

TEST_CASE("lmdb store: get, set, increment, expiry; answers later on the loop; the loop closes clean") {
  store_test::TempDir dir;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto service = store::open_service(lmdb_config(dir.path), 0ms);
    CHECK(service->backend() == "lmdb");
    store::Store* s = service->acquire(&loop);
    common_semantics(&loop, *s);
    service->release(&loop);
  }
  CHECK(store_test::loop_ends(&loop));
}

TEST_CASE("lmdb store: what was written survives closing and reopening the environment") {
  store_test::TempDir dir;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto service = store::open_service(lmdb_config(dir.path), 0ms);
    store::Store* s = service->acquire(&loop);
    Answer a;
    s->set("kept", "yes", 3600, a.callback());
    wait(&loop, a);
    // Fire-and-forget writes are committed too before the environment closes.
    for (int i = 0; i < 50; ++i) s->increment("n", 3600, nullptr);
    service->release(&loop);
  }
  {
    auto service = store::open_service(lmdb_config(dir.path), 0ms);
    store::Store* s = service->acquire(&loop);
    Answer a, n;
    s->get("kept", a.callback());
    s->get("n", n.callback());
    CHECK(wait(&loop, a).value == "yes");
    CHECK(wait(&loop, n).value == "50");
    service->release(&loop);
  }
  CHECK(store_test::loop_ends(&loop));
}

TEST_CASE("lmdb store: one service per directory; counts from four worker loops add up") {
  store_test::TempDir dir;
  auto service = store::open_service(lmdb_config(dir.path), 0ms);
  CHECK(store::open_service(lmdb_config(dir.path), 0ms) == service);  // same env, never opened twice
  constexpr int kThreads = 4, kEach = 200;
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      uv_loop_t loop;
      uv_loop_init(&loop);
      store::Store* s = service->acquire(&loop);
      int mine = 0;
      for (int i = 0; i < kEach; ++i) s->increment("shared", 60, [&](store::Result r) {
        if (!r.failed()) ++mine;
      });
      run_until(&loop, [&] { return mine == kEach; }, 10000ms);
      answered += mine;
      service->release(&loop);
      store_test::loop_ends(&loop);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(answered == kThreads * kEach);
  uv_loop_t loop;
  uv_loop_init(&loop);
  store::Store* s = service->acquire(&loop);
  Answer a;
  s->get("shared", a.callback());
  CHECK(wait(&loop, a).value == std::to_string(kThreads * kEach));
  service->release(&loop);
  CHECK(store_test::loop_ends(&loop));
}

TEST_CASE("lmdb store: the sweep removes expired entries in the background") {
  store_test::TempDir dir;
  auto c = lmdb_config(dir.path);
  c.lmdb.purge_interval = 200ms;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto service = store::open_service(c, 0ms);
    store::Store* s = service->acquire(&loop);
    Answer last;
    for (int i = 0; i < 20; ++i) s->set("e" + std::to_string(i), "x", 1, nullptr);
    s->set("stays", "x", 3600, last.callback());
    wait(&loop, last);
    CHECK(store::lmdb_entry_count(*service) == 21);
    CHECK(run_until(&loop, [&] { return store::lmdb_entry_count(*service) == 1; }, 5000ms));
    service->release(&loop);
  }
  CHECK(store_test::loop_ends(&loop));
}

TEST_CASE("lmdb store: a directory that cannot be made is refused with its key path") {
  auto c = lmdb_config("/proc/no-such-dir");
  CHECK_THROWS_WITH_AS(store::open_service(c, 0ms), doctest::Contains("store.lmdb.path: cannot create"), config::ConfigError);
}

TEST_CASE("lmdb store: a lingering loop store is taken back; release_lingering closes it") {
  store_test::TempDir dir;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto service = store::open_service(lmdb_config(dir.path), 60'000ms);
    store::Store* a = service->acquire(&loop);
    service->release(&loop);
    store::Store* b = service->acquire(&loop);
    CHECK(a == b);
    service->release(&loop);
    net::LoopShare::release_lingering();  // what a worker does at shutdown
  }
  CHECK(store_test::loop_ends(&loop));
}

TEST_CASE("redis store: the same semantics against a real redis-server, TTLs in Redis") {
  store_test::RedisServer redis(store_test::free_port());
  if (!redis.available()) {
    MESSAGE("redis-server not installed: skipped");
    return;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto service = store::open_service(redis_config(redis.port()), 0ms);
    CHECK(service->backend() == "redis");
    store::Store* s = service->acquire(&loop);
    common_semantics(&loop, *s);
    // Many in flight at once: pipelined on the one connection, answered in order.
    std::vector<Answer> answers(200);
    for (int i = 0; i < 200; ++i) s->set("p" + std::to_string(i), std::to_string(i), 60, answers[i].callback());
    CHECK(run_until(&loop, [&] { return answers.back().got; }));
    for (auto& a : answers) CHECK(a.result.status == store::Status::Ok);
    service->release(&loop);
  }
  CHECK(store_test::loop_ends(&loop));
}

TEST_CASE("redis store: unreachable, stalled and restarted Redis: commands fail in time, then work again") {
  int port = store_test::free_port();
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto service = store::open_service(redis_config(port), 0ms);
    store::Store* s = service->acquire(&loop);
    // Nothing listens: the command fails ("unavailable"), quickly, and later on the loop.
    Answer down;
    auto t0 = std::chrono::steady_clock::now();
    s->get("k", down.callback());
    CHECK_FALSE(down.got);
    auto r = wait(&loop, down, 2000ms);
    CHECK(r.failed());
    CHECK(r.error == "unavailable");
    CHECK(std::chrono::steady_clock::now() - t0 < 1000ms);

    store_test::RedisServer redis(port);
    if (!redis.available()) {
      service->release(&loop);
      MESSAGE("redis-server not installed: skipped");
      return;
    }
    // After reconnect_interval the next command connects again.
    std::this_thread::sleep_for(150ms);
    Answer up;
    s->set("k", "v", 60, up.callback());
    CHECK(wait(&loop, up).status == store::Status::Ok);

    // Stalled (SIGSTOP): the command times out at command_timeout, not later.
    redis.pause();
    Answer stalled;
    t0 = std::chrono::steady_clock::now();
    s->get("k", stalled.callback());
    r = wait(&loop, stalled, 3000ms);
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(r.error == "timeout");
    CHECK(took >= 250ms);
    CHECK(took < 1500ms);
    redis.resume();

    // Killed and started again: the shared view comes back (the data went with it: no persistence).
    redis.stop();
    Answer lost;
    s->get("k", lost.callback());
    CHECK(wait(&loop, lost).failed());
    redis.start();
    bool back = false;
    for (int i = 0; i < 40 && !back; ++i) {
      std::this_thread::sleep_for(120ms);
      Answer again;
      s->set("k", "again", 60, again.callback());
      back = !wait(&loop, again).failed();
    }
    CHECK(back);
    service->release(&loop);
  }
  CHECK(store_test::loop_ends(&loop));
}
