// proxy/downstream_link.h — a session's side towards the MTA: at most one downstream connection at
// a time, its handshake, the commands in flight on it, and its timer.
//
// Owned by a Session (a member); it reports to the session through DownstreamLink::Owner, never
// by pointer comparison. What it owns:
//   - the stream (net::StreamPtr): fresh from a connect, or taken from the worker's pool (then
//     leased while max_sessions > 1); every way it leaves (reset, retire, give back, replaced)
//     goes through release_stream(), which ends the lease once and drops the stream (its events
//     go nowhere, it closes on its own: nothing to count);
//   - the handshake (smtp::Handshake), the one way any connection becomes ready: fresh ones, the
//     pool's, reconnections with the client's HELO/EHLO replayed, the replay of an edited message
//     and the replacement of a pooled connection found dead all go through open() and it;
//   - what is per connection (Connection: phase, reply parser, capabilities, replies owed, what
//     the pool said ahead of the client, the history the pool keeps): reset() forgets it all in
//     one assignment;
//   - a LazyTimer for the connect, the handshake and the replies owed (the dot's reply gets
//     downstream.data_end_timeout); the session closes it in its close sequence (close_group).
// Replies to commands reach the owner in order, one at a time; a reply when none is owed is an
// MTA announcing its own close (421 on idle): logged and dropped. The owner may reset() or open()
// from inside any callback; the link notices and stops handling the old connection's bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <uv.h>

#include "lib/metrics/metrics.h"
#include "lib/net/lazy_timer.h"
#include "lib/net/stream.h"
#include "lib/net/connector.h"
#include "lib/smtp/command.h"
#include "lib/smtp/handshake.h"
#include "lib/smtp/reply.h"
#include "proxy/downstream_pool.h"
#include "proxy/replies.h"
#include "proxy/runtime.h"

namespace dotgate::proxy {

class DownstreamLink final : public net::Stream::Events {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // The plan said relay_greeting: the MTA's greeting, whatever its code, for the client.
    virtual void on_link_greeting(smtp::Reply greeting) = 0;
    virtual void on_link_ready() = 0;  // the handshake is done: commands may go
    virtual void on_link_reply(smtp::Reply reply) = 0;  // the reply to the oldest command owed
    // The connection cannot serve (connect, handshake, timeout, protocol): the owner ends or
    // retries what depended on it. `spec`: what a client waiting on it should hear.
    virtual void on_link_failed(metrics::DownstreamError why, const ReplySpec& spec, const std::string& detail) = 0;
    // The MTA closed (or the stream failed) on a ready connection. `idle`: nothing was owed and no
    // half reply is held; the owner decides whether that loses anything.
    virtual void on_link_closed(const net::StreamEnd& end, bool idle) = 0;
    virtual void on_link_drained() = 0;  // the write queue to the MTA became empty
  };
  struct Context {
    uv_loop_t* loop;
    net::Connector& connector;  // fresh connections (the worker's TcpConnector; scripted in tests)
    DownstreamPool* pool;       // null: none
    metrics::WorkerCounters& counters;
    std::atomic<bool>& reachable;  // Shared::downstream_reachable: the last connect's outcome
    std::string client;            // for log lines
  };
  enum class Phase { None, Connecting, Handshake, Ready };

  DownstreamLink(Owner& owner, Context context, std::shared_ptr<const Runtime> runtime);
  DownstreamLink(const DownstreamLink&) = delete;
  DownstreamLink& operator=(const DownstreamLink&) = delete;
  ~DownstreamLink() override;

  // A connection, handshaken with `plan`: from the pool when it has one that fits (unless
  // `use_pool` is false or a pooled one did not fit this client before), else a fresh connect.
  void open(smtp::Handshake::Plan plan, bool use_pool = true);
  // Drops the connection, if any, before any dot (the MTA queues nothing), and all that was
  // known of it. The link may be opened again.
  void reset();
  void set_client(std::string client) { context_.client = std::move(client); }  // for log lines
  // The session is closing: reset, and no more timer events.
  void shut_down();
  uv_handle_t* timer_handle() { return reinterpret_cast<uv_handle_t*>(&timer_.handle); }

  void send_command(std::string_view wire);  // one or more command lines; each owes a reply
  void send_dot(std::string_view wire);      // the last of the body and the dot: one reply, data_end_timeout
  void send_body(std::string_view wire);     // body bytes: no reply owed
  void expect_replies(std::size_t n) { conn_.in_flight += n; arm_timer(); }  // sent as body bytes

  // The client's HELO/EHLO was answered by the MTA (relayed, not replayed): its capabilities.
  void hello_answered(const std::string& hello, const smtp::Reply& reply);

  // The first command of a client on a connection the pool greeted for it: does the MTA's state
  // fit it? A reused connection (max_sessions) needs HELO/EHLO first; one that said EHLO ahead
  // (pool.ehlo) needs exactly that EHLO. False: the connection is retired unused (it never saw
  // this client), and the link is None; the caller opens a fresh one (the pool is not asked again).
  bool fits_first_command(const smtp::Command& cmd);
  // The pool said exactly this EHLO ahead of the client: its reply, once.
  std::optional<smtp::Reply> take_speculated_reply(const smtp::Command& cmd);

  // QUIT: the client is done and nothing is owed. The pool says QUIT to the MTA off the client's
  // path, or keeps the connection for the next client (max_sessions) when `reusable`; true when
  // the pool took it. `client_said_helo`: the MTA holds this client's HELO/EHLO.
  bool retire(bool reusable, bool client_said_helo);

  // The connection must go to no further client (an unknown verb, AUTH).
  void not_reusable() { conn_.reusable = false; }
  void count_mail() { ++conn_.history.mails; }
  void count_junk() { ++conn_.history.junk; }

  Phase phase() const { return conn_.phase; }
  bool connected() const { return stream_ != nullptr; }
  bool ready() const { return conn_.phase == Phase::Ready; }
  bool pipelining() const { return conn_.capabilities.pipelining; }
  const smtp::EhloCapabilities& capabilities() const { return conn_.capabilities; }
  std::size_t in_flight() const { return conn_.in_flight; }
  // XCLIENT went on this connection (accepted), naming xclient_identity().
  bool identity_sent() const { return conn_.handshake.identity_sent(); }
  const smtp::ClientIdentity* xclient_identity() const { return conn_.handshake.plan().xclient.get(); }
  std::size_t queued_bytes() const { return stream_ ? stream_->queued_bytes() : 0; }
  bool parser_idle() const { return conn_.parser.idle(); }

  // net::Stream::Events
  void on_connected(net::Stream& s, int status) override;
  void on_data(net::Stream& s, std::string_view data) override;
  void on_end(net::Stream& s, const net::StreamEnd& end) override;
  void on_drained(net::Stream& s) override;

 private:
  // NOOP and RSET on one downstream connection past which it goes to no further client: Postfix
  // counts them per connection and starts penalising at smtpd_junk_command_limit (100).
  static constexpr std::size_t kMaxReusedJunk = 50;
  // MAIL commands on one downstream connection past which it goes to no further client: Exim
  // refuses MAIL past smtp_accept_max_per_connection (1000) on a connection.
  static constexpr std::size_t kMaxReusedMails = 500;

  // Everything known of the connection of the moment: reset() forgets it in one assignment.
  struct Connection {
    Phase phase = Phase::None;
    smtp::Handshake handshake{{}};
    smtp::ReplyParser parser;
    smtp::EhloCapabilities capabilities;
    std::size_t in_flight = 0;  // replies owed
    bool dot_in_flight = false;  // the dot's reply is among them: data_end_timeout
    // A connection from the pool may have died just before we took it (the MTA's timeout, a
    // restart): until its first reply, what we sent on it is kept, to be sent again on a fresh
    // connection if it ends unanswered.
    bool untested = false;
    std::string untested_sent;
    std::string resend_when_ready;  // that, for the fresh connection
    // pool.ehlo: the MTA's reply to the EHLO the pool said ahead, for a first command that is
    // exactly that EHLO; `speculated_used`: the client's EHLO was answered so (a fresh connection
    // must say it again).
    std::string speculated_hello;
    std::optional<smtp::Reply> speculated_reply;
    bool speculated_used = false;
    // max_sessions: what the connection carried, whether the MTA holds an earlier client's HELO
    // (the first command must then be HELO/EHLO), and whether this session left anything the next
    // client must not inherit (an error reply, AUTH, an unknown verb).
    DownstreamPool::History history;
    bool reused_unproven = false;
    bool reusable = true;
    bool leased = false;  // the pool counts it toward its size until release_stream()
  };

  void connect_fresh(smtp::Handshake::Plan plan);
  bool adopt_pooled(DownstreamPool& pool, const smtp::Handshake::Plan& plan);
  // Carries out one step of the handshake; false when the connection changed under it.
  bool handshake_output(smtp::Handshake::Output out);
  void became_ready();
  void deliver(smtp::Reply reply);
  void replace_dead_pooled();
  void write(std::string_view wire);
  void release_stream();  // the lease ended, the stream dropped
  net::Stream* take_stream();  // the lease ended, the stream is the caller's (for the pool)
  void arm_timer();
  static void on_timer(uv_timer_t* t);
  void failed(metrics::DownstreamError why, const ReplySpec& spec, const std::string& detail);

  Owner& owner_;
  Context context_;
  std::shared_ptr<const Runtime> runtime_;
  const config::DownstreamConfig& config_;
  net::StreamPtr stream_;
  Connection conn_;
  std::uint64_t generation_ = 0;  // counts connections: a callback sees whether its own is gone
  bool no_pool_ = false;  // a pooled connection did not fit this client: no more for this session
  bool shut_down_ = false;
  net::LazyTimer timer_;
};

}  // namespace dotgate::proxy
