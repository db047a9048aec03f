// test/unit/policies/client_registry_test.cc — the per-loop keep-alive Client: shared while
// instances hold it, lingering after the last release, taken back within the linger, released by
// its timer or by release_lingering(), and nothing left open on the loop afterwards. A real libuv
// loop, no sockets (a Client connects only when it posts).
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include <uv.h>

#include "policies/client_registry.h"

using namespace dotgate;
using namespace std::chrono_literals;

namespace {
http::Url url() {
  http::Url u;
  CHECK(http::parse_url("http://127.0.0.1:9/verdict", u).empty());
  return u;
}

// Runs the loop until it has nothing left; true when it closed cleanly (no handle of ours open).
bool loop_ends(uv_loop_t* loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0;
}
}  // namespace

TEST_CASE("client registry: one Client per loop while instances hold it") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    policy::ClientRegistry r(url(), 2, 0ms);
    http::Client* a = r.acquire(&loop);
    http::Client* b = r.acquire(&loop);
    CHECK(a == b);
    r.release(&loop);
    r.release(&loop);
    CHECK(r.lingering() == 0);  // no linger configured: closed at the last release
  }
  CHECK(loop_ends(&loop));
}

TEST_CASE("client registry: the last release lingers; an acquire takes the same Client back") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  policy::ClientRegistry r(url(), 2, 50ms);
  http::Client* a = r.acquire(&loop);
  r.release(&loop);
  CHECK(r.lingering() == 1);
  http::Client* b = r.acquire(&loop);
  CHECK(a == b);
  CHECK(r.lingering() == 0);
  r.release(&loop);
  CHECK(r.lingering() == 1);
  // The linger's timer ends it: the loop then has nothing left and closes cleanly.
  auto t0 = std::chrono::steady_clock::now();
  CHECK(loop_ends(&loop));
  CHECK(std::chrono::steady_clock::now() - t0 >= 40ms);
  CHECK(r.lingering() == 0);
}

TEST_CASE("client registry: release_lingering ends every linger of this thread at once") {
  std::thread t([] {  // a thread of its own: release_lingering() marks the thread for good
    uv_loop_t loop;
    uv_loop_init(&loop);
    policy::ClientRegistry r1(url(), 2, 60s);
    policy::ClientRegistry r2(url(), 2, 60s);
    r1.acquire(&loop);
    r2.acquire(&loop);
    r1.release(&loop);
    r2.release(&loop);
    CHECK(r1.lingering() == 1);
    CHECK(r2.lingering() == 1);
    net::LoopShare::release_lingering();
    CHECK(r1.lingering() == 0);
    CHECK(r2.lingering() == 0);
    // From now on this thread lets go at once (a worker shutting down).
    r1.acquire(&loop);
    r1.release(&loop);
    CHECK(r1.lingering() == 0);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(loop_ends(&loop));
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);  // not the 60 s linger
  });
  t.join();
}

TEST_CASE("client registry: a registry gone while its Client lingers leaves it to its timer") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    policy::ClientRegistry r(url(), 2, 30ms);  // a reload drops the old factories
    r.acquire(&loop);
    r.release(&loop);
    CHECK(r.lingering() == 1);
  }
  CHECK(loop_ends(&loop));
}
