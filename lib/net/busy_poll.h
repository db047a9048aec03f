// lib/net/busy_poll.h — keeps a loop from sleeping for a short while after each read.
//
// On a virtual machine, and on hosts with deep CPU idle states, a thread that sleeps in epoll_wait
// pays a wake-up (an inter-processor interrupt, a VM exit, the vCPU scheduled again) of tens of
// microseconds for every packet; a relay pays it twice per exchange. After each read the loop
// polls with a zero timeout (an active uv_idle handle) for `budget` more, so the reply that
// follows within the budget is picked up without a wake-up; once a budget passes with no read
// the loop sleeps as before. haproxy's `busy-polling` is the same trade, always on; this one is
// bounded: an idle worker sleeps. Owned by one worker; the loop thread only.
#pragma once

#include <cstdint>

#include <uv.h>

namespace dotgate::net {

class BusyPoll {
 public:
  BusyPoll(uv_loop_t* loop, std::uint64_t budget_us);
  BusyPoll(const BusyPoll&) = delete;
  BusyPoll& operator=(const BusyPoll&) = delete;

  void set_budget(std::uint64_t budget_us) { budget_ns_ = budget_us * 1000; }
  // A read happened: poll without sleeping until `budget` after now.
  void touch() {
    if (budget_ns_ == 0 || closed_) return;
    deadline_ns_ = uv_hrtime() + budget_ns_;
    if (!active_) start();
  }
  // The handle's close sequence: call once; `done` runs from its close callback.
  void close(void (*done)(void*), void* arg);

 private:
  void start();
  static void on_idle(uv_idle_t* idle);

  uv_idle_t idle_{};
  std::uint64_t budget_ns_;
  std::uint64_t deadline_ns_ = 0;
  bool active_ = false;
  bool closed_ = false;
  void (*done_)(void*) = nullptr;
  void* done_arg_ = nullptr;
};

}  // namespace dotgate::net
