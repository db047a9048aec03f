// LazyTimer on a real loop: it fires once at its deadline; a later deadline moves the callback
// back without restarting libuv's timer; an earlier one brings it forward; stop() means never; a
// timer armed again from its own callback fires again. Times are loop times (uv_now), so the
// checks are on the callback's time against the deadline, never on wall-clock speed.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include <uv.h>

#include "lib/net/lazy_timer.h"

namespace {

struct Fixture {
  uv_loop_t loop{};
  dotgate::net::LazyTimer timer;
  uv_timer_t helper{};  // does things at given times, or ends the run
  std::vector<std::uint64_t> fired;  // loop time of each callback, from the start
  std::uint64_t start = 0;
  int rearm = 0;  // the callback arms the timer again this many times

  Fixture() {
    uv_loop_init(&loop);
    timer.init(&loop, this);
    uv_timer_init(&loop, &helper);
    helper.data = this;
    start = uv_now(&loop);
  }
  ~Fixture() {
    uv_close(reinterpret_cast<uv_handle_t*>(&timer.handle), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&helper), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  static void on_timer(uv_timer_t* t) {
    auto* f = static_cast<Fixture*>(t->data);
    f->fired.push_back(uv_now(t->loop) - f->start);
    if (f->rearm > 0) {
      --f->rearm;
      f->timer.arm(&Fixture::on_timer, 20);
    }
  }
  std::uint64_t elapsed() { return uv_now(&loop) - start; }
  // Runs the loop until `ms` after the start (the helper timer stops it).
  void run_until(std::uint64_t ms) {
    uv_timer_start(&helper, [](uv_timer_t* t) { uv_stop(t->loop); }, ms > elapsed() ? ms - elapsed() : 0, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
};

}  // namespace

TEST_CASE("a LazyTimer fires once, at its deadline") {
  Fixture f;
  f.timer.arm(&Fixture::on_timer, 40);
  CHECK(f.timer.armed());
  f.run_until(150);
  REQUIRE(f.fired.size() == 1);
  CHECK(f.fired[0] >= 40);
  CHECK_FALSE(f.timer.armed());
}

TEST_CASE("arming again with a later deadline moves the callback back") {
  Fixture f;
  f.timer.arm(&Fixture::on_timer, 40);
  f.run_until(20);
  f.timer.arm(&Fixture::on_timer, 60);  // due at 80 or later, not at 40
  std::uint64_t armed_at = f.elapsed();
  f.run_until(60);
  CHECK(f.fired.empty());  // libuv's timer went off at 40 and was armed again for the rest
  f.run_until(200);
  REQUIRE(f.fired.size() == 1);
  CHECK(f.fired[0] >= armed_at + 60);
}

TEST_CASE("arming again with an earlier deadline brings the callback forward") {
  Fixture f;
  f.timer.arm(&Fixture::on_timer, 500);
  f.timer.arm(&Fixture::on_timer, 30);
  f.run_until(150);
  REQUIRE(f.fired.size() == 1);
  CHECK(f.fired[0] >= 30);
  CHECK(f.fired[0] < 500);
}

TEST_CASE("a stopped LazyTimer never calls back, and can be armed again") {
  Fixture f;
  f.timer.arm(&Fixture::on_timer, 30);
  f.timer.stop();
  CHECK_FALSE(f.timer.armed());
  f.run_until(100);
  CHECK(f.fired.empty());
  f.timer.arm(&Fixture::on_timer, 30);
  f.run_until(250);
  CHECK(f.fired.size() == 1);
}

TEST_CASE("a LazyTimer armed from its own callback fires again") {
  Fixture f;
  f.rearm = 2;
  f.timer.arm(&Fixture::on_timer, 20);
  f.run_until(300);
  REQUIRE(f.fired.size() == 3);
  CHECK(f.fired[1] >= f.fired[0] + 20);
  CHECK(f.fired[2] >= f.fired[1] + 20);
}
