// proxy/downstream_pool.cc — see downstream_pool.h. Close sequence: discard() closes a connection
// and forgets its entry at once; its on_closed only counts it off (open_). shut_down() closes every
// connection and the timer; the last close callback runs on_finished.
#include "proxy/downstream_pool.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "lib/log/log.h"

namespace dotgate::proxy {

DownstreamPool::DownstreamPool(uv_loop_t* loop, net::Connector& connector, metrics::WorkerCounters* counters,
                               std::function<void()> on_finished)
    : loop_(loop), connector_(connector), counters_(counters), on_finished_(std::move(on_finished)) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

std::size_t DownstreamPool::pooled() const {
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.phase != Phase::Quitting; }));
}

std::size_t DownstreamPool::idle_count() const {
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.phase == Phase::Idle; }));
}

bool DownstreamPool::compatible(const Runtime& runtime) const {
  return runtime_ && std::memcmp(&runtime_->downstream_address, &runtime.downstream_address,
                                 sizeof runtime.downstream_address) == 0;
}

void DownstreamPool::fill(std::shared_ptr<const Runtime> runtime) {
  if (draining_ || !runtime) return;
  if (runtime != runtime_) {
    if (!compatible(*runtime)) {
      // A reload moved the downstream: what is pooled leads to the old one.
      for (auto it = entries_.begin(); it != entries_.end();) {
        auto next = std::next(it);
        if (it->phase != Phase::Quitting) discard(it, false, "downstream changed");
        it = next;
      }
      retry_at_ = 0;
      backoff_ = 0;
    }
    runtime_ = std::move(runtime);
  }
  // Leased connections hold their slots: most come back (max_sessions > 1).
  std::size_t slots = slots_held();
  // A reload made the pool smaller (or turned it off): the extra connections go now.
  for (auto it = entries_.begin(); it != entries_.end() && slots > runtime_->config.downstream.pool_size;) {
    auto next = std::next(it);
    if (it->phase != Phase::Quitting) {
      discard(it, false, "pool made smaller");
      --slots;
    }
    it = next;
  }
  if (uv_now(loop_) >= retry_at_) {
    while (slots < runtime_->config.downstream.pool_size && !draining_) {
      ++slots;
      open_one();
    }
  }
  arm_timer();
}

void DownstreamPool::open_one() {
  int rc = 0;
  net::Stream* c = connector_.connect(reinterpret_cast<const sockaddr*>(&runtime_->downstream_address), this, rc);
  if (!c) {
    log::debug("downstream pool: connect failed", {{"reason", uv_strerror(rc)}});
    failed();
    return;
  }
  ++open_;
  Entry& e = entries_.emplace_back();
  e.connection = c;
  e.phase = Phase::Connecting;
  smtp::Handshake::Plan plan;  // greeted for no client yet; pool.ehlo said ahead
  if (!runtime_->config.downstream.pool_ehlo.empty()) plan.hello = "EHLO " + runtime_->config.downstream.pool_ehlo;
  e.handshake = smtp::Handshake(std::move(plan));
  // As for a session's own connection: connect_timeout covers the connect and the greeting.
  e.deadline = uv_now(loop_) + static_cast<std::uint64_t>(runtime_->config.downstream.connect_timeout.count());
}

std::optional<DownstreamPool::Taken> DownstreamPool::take(const std::shared_ptr<const Runtime>& runtime) {
  // Only for the downstream the pool connects to now. A session started before a reload that moved
  // the downstream does not get one (nor does it move the pool back: Worker::on_connection fills
  // it for the newest runtime).
  if (draining_ || !runtime_ || !compatible(*runtime)) return std::nullopt;
  std::optional<Taken> out;
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->phase != Phase::Idle) continue;
    smtp::Handshake::Held held;
    if (it->greeting) {
      held.greeting = std::move(*it->greeting);  // given back: the greeting its first client had
    } else {
      held = it->handshake.take_held();
    }
    out = Taken{it->connection, std::move(held), it->history};
    entries_.erase(it);
    --open_;  // the session owns it now (it sets itself as the events target)
    if (runtime_->config.downstream.pool_max_sessions > 1) {
      out->leased = true;
      ++leased_;
    }
    break;
  }
  // Refill at once, but after this loop iteration: the taker's greeting leaves first, and the
  // connect(2) and epoll_ctl(2) of the replacement stay off the client's critical path. A leased
  // connection still fills its slot: nothing to open for it.
  refill_at_ = std::min(refill_at_, uv_now(loop_));
  arm_timer();
  return out;
}

void DownstreamPool::retire(net::Stream* c) {
  c->set_events(this);
  ++open_;
  if (shut_down_) {
    c->close();
    return;
  }
  Entry& e = entries_.emplace_back();
  e.connection = c;
  e.phase = Phase::Quitting;
  e.deadline = uv_now(loop_) + kQuitTimeoutMs;
  c->write("QUIT\r\n");
  arm_timer();
}

bool DownstreamPool::give_back(net::Stream* c, const smtp::Reply& greeting, const History& history,
                               const std::shared_ptr<const Runtime>& runtime) {
  if (draining_ || shut_down_ || !runtime_ || !compatible(*runtime)) return false;
  const auto& d = runtime_->config.downstream;
  if (history.sessions >= d.pool_max_sessions || greeting.klass() != 2) return false;
  if (history.last_sent_ms + static_cast<std::uint64_t>(d.pool_max_idle.count()) <= uv_now(loop_)) return false;
  if (slots_held() >= d.pool_size) {
    // Full: a connection still on its way in is worth less than this greeted one.
    auto opening = std::find_if(entries_.begin(), entries_.end(), [](const Entry& e) {
      return e.phase == Phase::Connecting || e.phase == Phase::Handshake;
    });
    if (opening == entries_.end()) return false;
    discard(opening, false, "a session gave one back");
  }
  c->set_events(this);
  ++open_;
  Entry& e = entries_.emplace_back();
  e.connection = c;
  e.phase = Phase::Idle;
  e.greeting = greeting;
  e.history = history;
  // max_idle counts from the last command the MTA saw, not from now: its smtpd_timeout does.
  e.deadline = history.last_sent_ms + static_cast<std::uint64_t>(d.pool_max_idle.count());
  arm_timer();
  return true;
}

void DownstreamPool::lease_ended() {
  if (leased_ > 0) --leased_;
  // Its slot is free. Filled after this loop iteration, by then a give_back() may have taken it.
  refill_at_ = std::min(refill_at_, uv_now(loop_));
  arm_timer();
}

void DownstreamPool::drain() {
  if (draining_) return;
  draining_ = true;
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (it->phase != Phase::Quitting) discard(it, false, "draining");
    it = next;
  }
  arm_timer();
}

void DownstreamPool::shut_down() {
  if (shut_down_) return;
  drain();
  shut_down_ = true;
  while (!entries_.empty()) discard(entries_.begin(), false, "shutting down");
  arm_timer();  // only the gauges: it starts nothing once shut down
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
    auto* p = static_cast<DownstreamPool*>(h->data);
    if (--p->open_ == 0) p->on_finished_();
  });
}

std::list<DownstreamPool::Entry>::iterator DownstreamPool::find(net::Stream& c) {
  return std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.connection == &c; });
}

// Closes the entry's connection and forgets the entry. `failure`: the MTA did not give us a usable
// connection; new ones wait (backoff) so a refusing or crashing MTA is not hammered.
void DownstreamPool::discard(std::list<Entry>::iterator it, bool failure, const char* why) {
  if (it->phase != Phase::Quitting && why)
    log::debug("downstream pool: connection dropped", {{"reason", why}});
  it->connection->close();
  entries_.erase(it);
  if (failure) failed();
}

void DownstreamPool::failed() {
  backoff_ = backoff_ == 0 ? kBackoffMinMs : std::min(backoff_ * 2, kBackoffMaxMs);
  retry_at_ = uv_now(loop_) + backoff_;
}

void DownstreamPool::on_connected(net::Stream& c, int status) {
  auto it = find(c);
  if (it == entries_.end()) return;
  if (status != 0) {
    discard(it, true, uv_strerror(status));
    fill(runtime_);
    return;
  }
  c.set_nodelay();
  c.start_reading();
  it->phase = Phase::Handshake;
}

void DownstreamPool::on_data(net::Stream& c, std::string_view data) {
  auto it = find(c);
  if (it == entries_.end()) return;
  std::vector<smtp::Reply> replies;
  bool ok = it->parser.feed(data, replies);
  switch (it->phase) {
    case Phase::Handshake:
      handshake_replies(it, ok, replies);
      return;
    case Phase::Idle:
      // Nothing was asked: an MTA announcing its own close (421 on its idle timeout). Its EOF follows.
      discard(it, true, "unsolicited bytes while idle");
      fill(runtime_);
      return;
    case Phase::Quitting:
      if (!ok || !replies.empty()) discard(it, false, nullptr);  // the 221 (or anything): done
      return;
    case Phase::Connecting:
      return;
  }
}

// Only a lone 2xx greeting (and reply to the EHLO) is kept. A 4xx/5xx greeting (a busy or refusing
// MTA) is never handed to a client: the session's own fresh connection relays whatever the MTA
// says then. Bytes past a reply answer commands never sent: the MTA is confused.
void DownstreamPool::handshake_replies(std::list<Entry>::iterator it, bool ok, std::vector<smtp::Reply>& replies) {
  if (ok && replies.empty()) return;
  if (!ok || replies.size() != 1 || !it->parser.idle()) {
    log::debug("downstream pool: connection refused", {{"step", "handshake"}, {"reply", replies.empty() ? 0 : replies[0].code}});
    discard(it, true, nullptr);
    fill(runtime_);
    return;
  }
  smtp::Handshake::Output out = it->handshake.feed(std::move(replies[0]));
  if (out.failed) {
    log::debug("downstream pool: connection refused", {{"step", *out.failed}});
    discard(it, true, nullptr);
    fill(runtime_);
    return;
  }
  if (!out.send.empty()) it->connection->write(out.send);
  if (!out.ready) return;
  it->phase = Phase::Idle;
  it->deadline = uv_now(loop_) + static_cast<std::uint64_t>(runtime_->config.downstream.pool_max_idle.count());
  backoff_ = 0;
  retry_at_ = 0;
  arm_timer();
}

void DownstreamPool::on_end(net::Stream& c, const net::StreamEnd&) {
  auto it = find(c);
  if (it == entries_.end()) return;
  Phase phase = it->phase;
  // EOF or a read error while pooled: the MTA closed it (its timeout, a restart). Never handed out.
  discard(it, phase != Phase::Quitting, phase == Phase::Idle ? "closed while idle" : "closed during greeting");
  if (phase != Phase::Quitting) fill(runtime_);
}

void DownstreamPool::on_closed(net::Stream& c) {
  auto it = find(c);
  if (it != entries_.end()) entries_.erase(it);  // cannot happen: discard() forgets first
  if (--open_ == 0 && shut_down_) on_finished_();
}

// Every change of the pool's state ends here, so the gauges are set here (a walk of at most
// pool.size entries and the retiring ones).
void DownstreamPool::arm_timer() {
  if (counters_) {
    counters_->pool_idle.store(shut_down_ ? 0 : idle_count(), std::memory_order_relaxed);
    counters_->pool_leased.store(leased_, std::memory_order_relaxed);
  }
  if (shut_down_) return;
  std::uint64_t now = uv_now(loop_);
  std::uint64_t next = refill_at_;
  for (const auto& e : entries_) next = std::min(next, e.deadline);
  if (!draining_ && runtime_ && retry_at_ > now) {
    if (slots_held() < runtime_->config.downstream.pool_size) next = std::min(next, retry_at_);
  }
  if (next == kNever) {
    uv_timer_stop(&timer_);
    return;
  }
  uv_timer_start(&timer_, &DownstreamPool::on_timer, next > now ? next - now : 0, 0);
}

void DownstreamPool::on_timer(uv_timer_t* t) {
  auto* p = static_cast<DownstreamPool*>(t->data);
  std::uint64_t now = uv_now(p->loop_);
  if (p->refill_at_ <= now) p->refill_at_ = kNever;
  for (auto it = p->entries_.begin(); it != p->entries_.end();) {
    auto next = std::next(it);
    if (it->deadline <= now) {
      switch (it->phase) {
        case Phase::Connecting:
        case Phase::Handshake: p->discard(it, true, "connect timeout"); break;
        // Closed before the MTA's own idle timeout would close it under us; replaced below.
        case Phase::Idle: p->discard(it, false, "max_idle"); break;
        case Phase::Quitting: p->discard(it, false, nullptr); break;
      }
    }
    it = next;
  }
  p->fill(p->runtime_);
}

}  // namespace dotgate::proxy
