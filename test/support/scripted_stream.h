// test/support/scripted_stream.h — a net::Stream for unit tests: what its owner writes is kept,
// what the peer "sends" is injected by the test, and so are its end and close.
//
// No socket and no loop: the test drives every event synchronously (inject(), end(), connected())
// and reads what the owner wrote (take_written()). Like a real stream it frees itself after
// close: on_closed goes to the owner of the moment, then `delete this`, and a test that needs to
// know it went asks the Probe it was made with (the probe outlives it).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "lib/net/stream.h"

namespace dotgate::test {

class ScriptedStream final : public net::Stream {
 public:
  // What a test can see of a stream after it is gone.
  struct Probe {
    bool closed = false;         // close() or close_after_flush() was called
    bool flushed_close = false;  // it was close_after_flush()
    bool freed = false;          // on_closed was delivered and the stream deleted itself
    std::string written;         // everything the owner ever wrote, in order
  };

  ScriptedStream(Events* events, std::shared_ptr<Probe> probe) : events_(events), probe_(std::move(probe)) {}

  // The peer's side.
  void connected(int status = 0) { events_->on_connected(*this, status); }
  void inject(std::string_view bytes) {
    if (reading_ && !closing_) events_->on_data(*this, bytes);
  }
  void end(int status, std::string detail = "connection closed") {
    if (ended_ || closing_) return;
    ended_ = true;
    events_->on_end(*this, net::StreamEnd{status, std::move(detail)});
  }
  void drain() {
    queued_ = 0;
    events_->on_drained(*this);
  }
  // What the owner wrote since the last call.
  std::string take_written() {
    std::string out = probe_->written.substr(taken_);
    taken_ = probe_->written.size();
    return out;
  }
  void set_queued(std::size_t n) { queued_ = n; }
  // Completes a close (what the loop does for a real stream): on_closed, then the stream is gone.
  void finish_close() {
    if (!closing_) return;
    auto probe = probe_;
    events_->on_closed(*this);
    probe->freed = true;
    delete this;
  }

  // net::Stream
  void set_events(Events* events) override { events_ = events; }
  int start_reading() override {
    reading_ = true;
    return 0;
  }
  void stop_reading() override { reading_ = false; }
  void write(std::string_view bytes) override {
    if (!closing_) probe_->written.append(bytes);
  }
  std::size_t queued_bytes() const override { return queued_; }
  void close() override {
    closing_ = true;
    probe_->closed = true;
  }
  void close_after_flush() override {
    close();
    probe_->flushed_close = true;
  }
  bool closing() const override { return closing_; }
  std::string peer_name() const override { return "127.0.0.1:2525"; }
  void set_nodelay() override {}

  bool reading() const { return reading_; }
  Events* events() const { return events_; }

 private:
  Events* events_;
  std::shared_ptr<Probe> probe_;
  std::size_t queued_ = 0;
  std::size_t taken_ = 0;
  bool reading_ = false;
  bool ended_ = false;
  bool closing_ = false;
};

}  // namespace dotgate::test
