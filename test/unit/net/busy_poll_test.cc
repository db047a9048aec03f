// BusyPoll on a real loop: after touch() the loop does not sleep until the budget has passed, then
// it sleeps again; a zero budget never spins. A loop's iterations are counted with a prepare
// handle (it runs once per iteration, just before the poll).
#include <doctest/doctest.h>

#include <cstdint>

#include <uv.h>

#include "lib/net/busy_poll.h"

namespace {

struct Loop {
  uv_loop_t loop{};
  uv_prepare_t prepare{};
  uv_timer_t stop{};
  std::uint64_t iterations = 0;

  Loop() {
    uv_loop_init(&loop);
    uv_prepare_init(&loop, &prepare);
    prepare.data = this;
    uv_prepare_start(&prepare, [](uv_prepare_t* p) { ++static_cast<Loop*>(p->data)->iterations; });
    uv_unref(reinterpret_cast<uv_handle_t*>(&prepare));  // counts, never keeps the loop alive
    uv_timer_init(&loop, &stop);
  }
  // Runs the loop for `ms` of wall time (a timer ends it) and returns the iterations it made.
  std::uint64_t run_for(std::uint64_t ms) {
    iterations = 0;
    uv_timer_start(&stop, [](uv_timer_t* t) { uv_stop(t->loop); }, ms, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    return iterations;
  }
  ~Loop() {
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&stop), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
};

bool closed = false;
void on_closed(void*) { closed = true; }

}  // namespace

TEST_CASE("a touched BusyPoll keeps the loop polling for its budget, then lets it sleep") {
  Loop l;
  dotgate::net::BusyPoll busy(&l.loop, 50'000);  // 50 ms
  // Untouched: the loop sleeps in the poll until the timer; a handful of iterations at most.
  CHECK(l.run_for(100) < 10);

  busy.touch();
  std::uint64_t t0 = uv_hrtime();
  // Spinning: many iterations within the 50 ms (each is a zero-timeout poll and a sched_yield).
  CHECK(l.run_for(30) > 100);
  // Past the budget (50 ms from the touch) it sleeps again: a later window is quiet.
  l.run_for(40);
  CHECK(uv_hrtime() - t0 >= 50'000'000);
  CHECK(l.run_for(100) < 10);

  closed = false;
  busy.close(&on_closed, nullptr);
  busy.touch();  // after close: ignored, not a use of a closed handle
  l.run_for(1);
  CHECK(closed);
}

TEST_CASE("a zero budget never spins; set_budget turns it on and off") {
  Loop l;
  dotgate::net::BusyPoll busy(&l.loop, 0);
  busy.touch();
  CHECK(l.run_for(100) < 10);
  busy.set_budget(50'000);
  busy.touch();
  CHECK(l.run_for(30) > 100);
  busy.set_budget(0);
  l.run_for(60);  // the running budget ends
  busy.touch();   // a touch with budget 0 does nothing
  CHECK(l.run_for(100) < 10);
  busy.close(nullptr, nullptr);
  l.run_for(1);
}
