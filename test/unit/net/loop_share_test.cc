// test/unit/net/loop_share_test.cc — net::LoopShare: one object per loop made on first use, shared
// while users hold it, lingering after the last release, taken back within the linger, closed
// exactly once (by its timer, at once with no linger, or by release_lingering), a share destroyed
// while its object lingers, and nothing left open on the loop afterwards. A real libuv loop.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include <uv.h>

#include "lib/net/loop_share.h"

using namespace dotgate;
using namespace std::chrono_literals;

namespace {
struct Counts {
  int made = 0;
  int closed = 0;
};
struct Thing {
  Counts* counts;
};

net::LoopShareOf<Thing> share_of(Counts& c, std::chrono::milliseconds linger) {
  return net::LoopShareOf<Thing>(
      [&c](uv_loop_t*) {
        ++c.made;
        return new Thing{&c};
      },
      [](Thing* t) {
        ++t->counts->closed;
        delete t;
      },
      linger);
}

bool loop_ends(uv_loop_t* loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0;
}
}  // namespace

TEST_CASE("loop share: one object per loop, closed at the last release without a linger") {
  Counts c;
  uv_loop_t a, b;
  uv_loop_init(&a);
  uv_loop_init(&b);
  {
    auto share = share_of(c, 0ms);
    Thing* t1 = share.acquire(&a);
    Thing* t2 = share.acquire(&a);
    Thing* other = share.acquire(&b);
    CHECK(t1 == t2);
    CHECK(t1 != other);
    CHECK(c.made == 2);
    share.release(&a);
    CHECK(c.closed == 0);  // a user is left
    share.release(&a);
    CHECK(c.closed == 1);
    share.release(&a);  // one release too many is ignored
    CHECK(c.closed == 1);
    share.release(&b);
    CHECK(c.closed == 2);
    CHECK(share.lingering() == 0);
  }
  CHECK(loop_ends(&a));
  CHECK(loop_ends(&b));
}

TEST_CASE("loop share: the object lingers, is taken back without being made again, then its timer closes it") {
  Counts c;
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto share = share_of(c, 20ms);
  Thing* t = share.acquire(&loop);
  share.release(&loop);
  CHECK(share.lingering() == 1);
  CHECK(c.closed == 0);
  CHECK(share.acquire(&loop) == t);  // taken back within the linger
  CHECK(c.made == 1);
  CHECK(share.lingering() == 0);
  share.release(&loop);
  CHECK(share.lingering() == 1);
  CHECK(loop_ends(&loop));  // the timer fires, closes it, and nothing stays open
  CHECK(c.closed == 1);
  CHECK(share.lingering() == 0);
}

TEST_CASE("loop share: a share destroyed while its object lingers leaves it to the timer") {
  Counts c;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto share = share_of(c, 20ms);
    share.acquire(&loop);
    share.release(&loop);
  }  // a reload drops the old share
  CHECK(c.closed == 0);
  CHECK(loop_ends(&loop));
  CHECK(c.closed == 1);
}

TEST_CASE("loop share: release_lingering closes every share's lingering object on this thread, and later ones at once") {
  std::thread worker([] {  // a thread of its own: release_lingering() marks the thread for good
    Counts c1, c2;
    uv_loop_t loop;
    uv_loop_init(&loop);
    auto one = share_of(c1, 60s);
    auto two = share_of(c2, 60s);
    one.acquire(&loop);
    two.acquire(&loop);
    one.release(&loop);
    two.release(&loop);
    CHECK(one.lingering() + two.lingering() == 2);
    net::LoopShare::release_lingering();
    CHECK(c1.closed == 1);
    CHECK(c2.closed == 1);
    one.acquire(&loop);
    one.release(&loop);  // no linger after the worker's shutdown began
    CHECK(c1.closed == 2);
    CHECK(one.lingering() == 0);
    CHECK(loop_ends(&loop));  // a 60 s linger would keep the loop running
  });
  worker.join();
}
