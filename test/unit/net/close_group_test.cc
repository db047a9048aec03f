// net::CloseGroup on a real loop: `done` runs once, after the last handle's close callback and
// never before (the owner's memory is read by libuv until then); a group with nothing in it calls
// back at once; the loop closes with nothing left open.
#include <doctest/doctest.h>

#include <uv.h>

#include "lib/net/close_group.h"

TEST_CASE("done after the last of three handles is closed, once") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_timer_t a, b, c;
  uv_timer_init(&loop, &a);
  uv_timer_init(&loop, &b);
  uv_timer_init(&loop, &c);
  uv_timer_start(&b, [](uv_timer_t*) {}, 60'000, 0);  // an active one too
  dotgate::net::CloseGroup group;
  group.add(reinterpret_cast<uv_handle_t*>(&a));
  group.add(reinterpret_cast<uv_handle_t*>(&b));
  group.add(reinterpret_cast<uv_handle_t*>(&c));
  int done = 0;
  group.close([&] { ++done; });
  CHECK(done == 0);  // libuv still holds them: the callbacks come from the loop
  CHECK(group.closing());
  group.close([&] { done += 100; });  // a second close is ignored
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(done == 1);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("an empty group calls back at once") {
  dotgate::net::CloseGroup group;
  int done = 0;
  group.close([&] { ++done; });
  CHECK(done == 1);
}
