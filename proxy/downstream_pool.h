// proxy/downstream_pool.h — a worker's downstream connections that no session owns: pre-connected,
// pre-greeted ones waiting for a session (the pool), and ones a session is done with that say QUIT
// on their way out (retiring).
//
// Why: a session that takes a pooled connection greets its client at once with the MTA's own
// greeting, without the connect + greeting round trip; and a client's QUIT is answered by the
// session while the MTA's 221 is awaited here, off the client's critical path.
//
// Owned by the Worker, one per loop; sessions reach it through SessionHost. It owns every
// connection in it (TcpConnection::Events points here) and one timer. take() hands a connection
// over (set_events to the session, which owns it from then on); retire() takes one back.
//
// A pooled connection is only ever one that connected and whose whole greeting was a single 2xx
// reply (the handshake of lib/smtp/handshake.h, the same every session connection goes through): a 4xx/5xx greeting, extra bytes after the greeting, an EOF or a read error while idle, or
// max_idle passing all close it (it is never handed out). Failures to connect or greet back off
// (1 s doubling to 30 s) so a down MTA is not hammered. A connection handed out may still have died
// a moment before: the session falls back to a fresh connection (session_downstream.cc).
// With downstream.pool.ehlo set, a pooled connection also says "EHLO <name>" once greeted and is
// pooled only on a lone 2xx reply to it. That reply is not a cache: it is the MTA's own answer to
// that very command on the very connection the session then uses, sent before the client asked.
// The session uses it only when the client's first command is exactly that EHLO; any other first
// command gets a fresh connection and this one says QUIT (the MTA never sees a state the client
// did not cause). Off by default: it pays when every client says the same EHLO (a Postfix in front).
// With downstream.pool.max_sessions N > 1, a connection whose session ended cleanly (the client's
// QUIT, nothing open, no error from the MTA, no AUTH) comes back here (give_back) instead of
// saying QUIT, and serves up to N client sessions in all. The MTA sees one SMTP session in which
// each client's HELO/EHLO resets the state (RFC 5321 4.1.4), as with Postfix's own smtp
// connection cache. Such a connection is handed out marked `said_helo`: the session uses it only
// when the client's first command is HELO or EHLO (else the MTA would hold the previous client's
// HELO); any other gets a fresh connection and this one says QUIT. A connection handed out under
// max_sessions > 1 is leased: it still counts toward `size` until its session gives it back, retires
// it or closes it (lease_ended), so the pool does not open a fresh connection for a slot that a
// returning one fills a moment later (each such connect was a connect, a greeting, a QUIT and a
// close the MTA did for nothing: 60 % of the benchmark's messages paid it when the pool refilled
// after a fixed delay instead). With `size` clients busy, the next one connects on its own.
// SIGHUP: a new runtime with another downstream address or pool settings empties the pool; the
// next take() refills it for the new one.
// Drain: drain() closes the idle and connecting ones and stops refilling; retiring ones go on.
// Shutdown: shut_down() closes everything; on_finished runs once nothing is open any more.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "lib/metrics/metrics.h"
#include "lib/net/connector.h"
#include "lib/smtp/handshake.h"
#include "lib/smtp/reply.h"
#include "proxy/runtime.h"

namespace dotgate::proxy {

class DownstreamPool final : public net::Stream::Events {
 public:
  // What a connection did before this session (max_sessions > 1): it travels with the connection.
  struct History {
    std::size_t sessions = 0;  // client sessions it carried to the end
    std::size_t junk = 0;      // NOOP and RSET relayed on it (the MTA counts them per connection)
    std::size_t mails = 0;     // MAIL commands relayed on it (so does Exim)
    bool said_helo = false;    // the MTA holds an earlier client's HELO/EHLO
    std::uint64_t last_sent_ms = 0;  // uv_now() when it last carried a command: the MTA's idle clock
  };
  struct Taken {
    net::Stream* connection;  // connected, reading, greeted; the caller must set_events()
    smtp::Handshake::Held held;  // its 2xx greeting, and the EHLO it said ahead with its 2xx reply
    History history;
    bool leased = false;  // counts toward the pool's size until lease_ended()
  };

  // `counters`: where the pool's idle and leased gauges go (null: nowhere).
  DownstreamPool(uv_loop_t* loop, net::Connector& connector, metrics::WorkerCounters* counters,
                 std::function<void()> on_finished);
  DownstreamPool(const DownstreamPool&) = delete;
  DownstreamPool& operator=(const DownstreamPool&) = delete;

  // Opens connections up to `runtime`'s pool size (nothing when it is 0), or closes the extra ones.
  // `runtime` becomes the one the pool follows (the worker passes the newest).
  void fill(std::shared_ptr<const Runtime> runtime);
  // A greeted connection to `runtime`'s downstream, or nothing (pool off, empty, draining).
  // Starts the refill either way.
  std::optional<Taken> take(const std::shared_ptr<const Runtime>& runtime);
  // A session is done with `c` (its last reply read, nothing in flight): QUIT, then close on the
  // MTA's reply, its EOF, or kQuitTimeout. The pool owns it from here.
  void retire(net::Stream* c);
  // max_sessions: a session that ended cleanly offers its connection for the next client; false
  // when the pool does not want it (full, draining, another downstream, used up): retire() it.
  // `greeting`: the MTA's greeting on it, which the next client gets; `history` includes the
  // session that ends now.
  bool give_back(net::Stream* c, const smtp::Reply& greeting, const History& history,
                 const std::shared_ptr<const Runtime>& runtime);
  // A connection take() handed out with `leased` is no longer its session's (given back, retired
  // or closed): its slot is free. Called once per lease, before give_back() or retire().
  void lease_ended();

  void drain();      // no more pooled connections; retiring ones finish
  void shut_down();  // close everything now; on_finished once all is closed
  bool finished() const { return shut_down_ && open_ == 0; }
  std::size_t idle_count() const;

  // net::Stream::Events
  void on_connected(net::Stream& c, int status) override;
  void on_data(net::Stream& c, std::string_view data) override;
  void on_end(net::Stream& c, const net::StreamEnd& end) override;
  void on_closed(net::Stream& c) override;

 private:
  // The MTA's 221 normally arrives within a round trip; past this it is not worth waiting for.
  static constexpr std::uint64_t kQuitTimeoutMs = 2'000;
  static constexpr std::uint64_t kBackoffMinMs = 1'000;
  static constexpr std::uint64_t kBackoffMaxMs = 30'000;
  static constexpr std::uint64_t kNever = UINT64_MAX;

  // Handshake: the one of lib/smtp/handshake.h, without a client (greeting, and pool.ehlo's EHLO).
  enum class Phase { Connecting, Handshake, Idle, Quitting };
  struct Entry {
    net::Stream* connection = nullptr;
    Phase phase = Phase::Connecting;
    std::uint64_t deadline = 0;  // uv_now() ms: connect/greeting timeout, max_idle, or QUIT timeout
    smtp::ReplyParser parser;
    smtp::Handshake handshake{{}};
    std::optional<smtp::Reply> greeting;  // given back: the greeting the next client gets
    History history;
  };

  std::size_t pooled() const;  // every entry but the retiring ones
  std::size_t slots_held() const { return pooled() + leased_; }  // what counts toward `size`
  void open_one();
  void handshake_replies(std::list<Entry>::iterator it, bool ok, std::vector<smtp::Reply>& replies);
  void discard(std::list<Entry>::iterator it, bool failure, const char* why);
  std::list<Entry>::iterator find(net::Stream& c);
  void failed();
  void arm_timer();
  static void on_timer(uv_timer_t* t);
  bool compatible(const Runtime& runtime) const;

  uv_loop_t* loop_;
  net::Connector& connector_;
  metrics::WorkerCounters* counters_;
  std::function<void()> on_finished_;
  std::shared_ptr<const Runtime> runtime_;  // the one pooled connections were opened for
  std::list<Entry> entries_;                // pooled (Connecting/Greeting/Idle) and retiring
  uv_timer_t timer_{};
  std::size_t open_ = 1;           // connections here not yet closed, plus the timer
  std::size_t leased_ = 0;         // handed out under max_sessions > 1, not yet ended
  std::uint64_t retry_at_ = 0;     // no new pooled connection before this (backoff)
  std::uint64_t backoff_ = 0;      // 0: no failure since the last success
  std::uint64_t refill_at_ = kNever;  // a take() or an ended lease left a gap: fill it from the timer then (uv_now ms)
  bool draining_ = false;
  bool shut_down_ = false;
};

}  // namespace dotgate::proxy
