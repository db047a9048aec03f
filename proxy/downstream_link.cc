// proxy/downstream_link.cc — see downstream_link.h. Close sequence: the stream is dropped (never
// a dot: the MTA queues nothing) and closes on its own; the timer is the session's to close.
#include "proxy/downstream_link.h"

#include "lib/log/log.h"
#include "lib/net/tls_stream.h"

namespace dotgate::proxy {

DownstreamLink::DownstreamLink(Owner& owner, Context context, std::shared_ptr<const Runtime> runtime)
    : owner_(owner), context_(std::move(context)), runtime_(std::move(runtime)), config_(runtime_->config.downstream) {
  timer_.init(context_.loop, this);
}

DownstreamLink::~DownstreamLink() { release_stream(); }

// ---- opening -----------------------------------------------------------------------------------

void DownstreamLink::open(smtp::Handshake::Plan plan, bool use_pool) {
  reset();
  if (shut_down_) return;
  DownstreamPool* pool = use_pool && !no_pool_ ? context_.pool : nullptr;
  if (pool && adopt_pooled(*pool, plan)) return;
  connect_fresh(std::move(plan));
}

void DownstreamLink::connect_fresh(smtp::Handshake::Plan plan) {
  std::uint64_t generation = ++generation_;
  conn_.phase = Phase::Connecting;
  conn_.handshake = smtp::Handshake(std::move(plan));
  int rc = 0;
  stream_.reset(context_.connector.connect(reinterpret_cast<const sockaddr*>(&runtime_->downstream_address), this, rc));
  if (!stream_) {
    failed(metrics::DownstreamError::Connect, replies::kDownstreamUnavailable, uv_strerror(rc));
    return;
  }
  if (generation == generation_) arm_timer();
}

// A greeted connection from the pool: the handshake goes on from what it holds, as if its
// greeting had just arrived. False: the pool had none, or the one it had holds an EHLO that is
// not this plan's (retired unused; a fresh connection follows).
bool DownstreamLink::adopt_pooled(DownstreamPool& pool, const smtp::Handshake::Plan& plan) {
  auto taken = pool.take(runtime_);
  if (!taken) return false;
  ++generation_;
  stream_.reset(taken->connection);
  stream_->set_events(this);
  conn_.leased = taken->leased;
  conn_.untested = true;
  conn_.history = taken->history;
  // A plan with a hello (or XCLIENT) resets whatever an earlier client left.
  conn_.reused_unproven = taken->history.said_helo && plan.hello.empty() && !plan.xclient;
  std::string held_hello = taken->held.hello;
  conn_.phase = Phase::Handshake;
  conn_.handshake = smtp::Handshake(plan);
  smtp::Handshake::Output out = conn_.handshake.resume(std::move(taken->held));
  if (out.failed) {
    // It said another EHLO than this client's: not usable here, nor is the rest of the pool
    // (every pooled connection says the same EHLO).
    log::debug("pooled connection holds another EHLO, fresh downstream connection", {{"client", context_.client}});
    pool.retire(take_stream());
    reset();
    no_pool_ = true;
    return false;
  }
  if (!plan.hello.empty() && out.ready) {
    conn_.speculated_used = true;  // the replay this connection needs is the EHLO it said already
  } else if (!held_hello.empty() && !plan.xclient && plan.starttls == smtp::Handshake::Plan::Tls::Off) {
    // (XCLIENT and STARTTLS start the MTA over: nothing it said before holds)
    conn_.speculated_hello = std::move(held_hello);
    conn_.speculated_reply = conn_.handshake.hello_reply();
  }
  handshake_output(std::move(out));
  return true;
}

bool DownstreamLink::handshake_output(smtp::Handshake::Output out) {
  std::uint64_t generation = generation_;
  if (out.greeting) {
    owner_.on_link_greeting(std::move(*out.greeting));
    if (generation != generation_ || !stream_) return false;  // the owner reset or closed it
  }
  if (!out.send.empty()) write(out.send);
  if (out.start_tls) {
    // The MTA said 220 to STARTTLS: what follows is TLS. Anything it sent after the 220 in the
    // clear is dropped (as a client must, RFC 3207 4.2): a reply read later comes through TLS.
    conn_.parser.reset();
    ++generation_;
    stream_ = net::TlsStream::wrap(std::move(stream_), runtime_->downstream_tls, net::TlsStream::Role::Client, this);
    if (stream_) arm_timer();
    return false;  // the replies of the old read are not this connection's any more
  }
  if (out.failed) {
    failed(metrics::DownstreamError::Protocol, replies::kDownstreamUnavailable, *out.failed);
    return false;
  }
  if (out.ready) {
    became_ready();
    return generation == generation_;
  }
  arm_timer();
  return true;
}

void DownstreamLink::became_ready() {
  conn_.phase = Phase::Ready;
  // A hello the plan asked for (replayed, or the very one the pool said) is the client's: its
  // capabilities hold from now. One the pool said ahead counts once the client says it too.
  if (!conn_.handshake.plan().hello.empty()) conn_.capabilities = conn_.handshake.capabilities();
  if (!conn_.resend_when_ready.empty()) {
    // What the dead pooled connection swallowed (replace_dead_pooled): its replies are still owed.
    std::string wire = std::move(conn_.resend_when_ready);
    conn_.resend_when_ready.clear();
    write(wire);
  }
  arm_timer();
  owner_.on_link_ready();
}

// The pooled connection we took ended before it answered anything: it was dead already (closed by
// the MTA a moment before we took it). Nothing we sent on it was acted upon, so the client is
// served on a fresh connection as if nothing happened: the hello said again, or the commands in
// flight sent again once it is ready. Only once: a fresh connection is never retried.
void DownstreamLink::replace_dead_pooled() {
  log::info("pooled downstream connection was dead, connecting afresh", {{"client", context_.client}});
  bool handshaking = conn_.phase == Phase::Handshake;
  smtp::Handshake::Plan plan = conn_.handshake.plan();
  // A client still waiting for its greeting (XCLIENT was under way) gets the new connection's.
  plan.relay_greeting = plan.relay_greeting && !conn_.handshake.greeting_handed();
  // The client's EHLO was answered on the dead one (a replay, or what the pool said ahead): say it again.
  if (!handshaking && !conn_.speculated_used) plan.hello.clear();
  if (conn_.speculated_used && plan.hello.empty()) plan.hello = conn_.speculated_hello;
  std::string resend = std::move(conn_.untested_sent);
  std::size_t in_flight = conn_.in_flight;
  bool dot = conn_.dot_in_flight;
  open(std::move(plan), /*use_pool=*/false);
  if (!stream_ || handshaking) return;  // else what was lost is the hello itself, said again anyway
  conn_.resend_when_ready = std::move(resend);
  conn_.in_flight = in_flight;
  conn_.dot_in_flight = dot;
}

// ---- commands ----------------------------------------------------------------------------------

void DownstreamLink::write(std::string_view wire) {
  if (!stream_) return;
  conn_.history.last_sent_ms = uv_now(context_.loop);
  if (conn_.untested) conn_.untested_sent.append(wire);
  stream_->write(wire);
}

void DownstreamLink::send_command(std::string_view wire) {
  ++conn_.in_flight;
  write(wire);
  arm_timer();
}

void DownstreamLink::send_dot(std::string_view wire) {
  ++conn_.in_flight;
  conn_.dot_in_flight = true;
  write(wire);
  arm_timer();
}

void DownstreamLink::send_body(std::string_view wire) { write(wire); }

void DownstreamLink::hello_answered(const std::string& hello, const smtp::Reply& reply) {
  bool ehlo = hello.size() >= 4 && hello.compare(0, 4, "EHLO") == 0;
  conn_.capabilities = ehlo ? smtp::parse_ehlo(reply) : smtp::EhloCapabilities{};
}

bool DownstreamLink::fits_first_command(const smtp::Command& cmd) {
  if (!conn_.reused_unproven && !conn_.speculated_reply) return true;
  bool hello = cmd.verb == smtp::Verb::Ehlo || cmd.verb == smtp::Verb::Helo;
  bool fits = conn_.speculated_reply ? cmd.verb == smtp::Verb::Ehlo && "EHLO " + cmd.argument == conn_.speculated_hello
                                     : hello;
  if (fits) {
    conn_.reused_unproven = false;
    return true;
  }
  // The MTA on this connection holds another EHLO (or HELO) than the client's. QUIT it (never used
  // for this client); a fresh connection follows, without the pool (all of it said that EHLO; a
  // reused one is as likely to hold an earlier client's).
  log::debug("pooled connection does not fit the first command, fresh downstream connection", {{"client", context_.client}});
  if (context_.pool && stream_) context_.pool->retire(take_stream());
  reset();
  no_pool_ = true;
  return false;
}

std::optional<smtp::Reply> DownstreamLink::take_speculated_reply(const smtp::Command& cmd) {
  if (!conn_.speculated_reply || cmd.verb != smtp::Verb::Ehlo || "EHLO " + cmd.argument != conn_.speculated_hello)
    return std::nullopt;
  std::optional<smtp::Reply> reply = std::move(conn_.speculated_reply);
  conn_.speculated_reply.reset();
  conn_.speculated_used = true;
  conn_.capabilities = conn_.handshake.capabilities();
  return reply;
}

bool DownstreamLink::retire(bool reusable, bool client_said_helo) {
  DownstreamPool* pool = context_.pool;
  if (!pool || !stream_ || stream_->closing() || conn_.phase != Phase::Ready || conn_.in_flight > 0 ||
      !conn_.parser.idle())
    return false;
  // max_sessions: the next client may have it, if nothing of this session would follow it there.
  // XCLIENT: the MTA takes the connection for this client's; another client's XCLIENT would be
  // judged as coming from it, and refused.
  // The greeting the next client gets is the MTA's first (a 2xx, or the pool would not have it).
  const std::optional<smtp::Reply>& greeting = conn_.handshake.greeting();
  if (reusable && conn_.reusable && !conn_.handshake.identity_sent() && greeting && greeting->klass() == 2 &&
      conn_.history.junk < kMaxReusedJunk &&
      conn_.history.mails < kMaxReusedMails) {
    DownstreamPool::History history = conn_.history;
    ++history.sessions;
    // Every connection of a session that said HELO/EHLO carries it (relayed, replayed or speculated).
    history.said_helo = history.said_helo || client_said_helo;
    net::Stream* s = take_stream();  // before give_back(): its own slot is the one it may fill again
    if (pool->give_back(s, *greeting, history, runtime_)) {
      context_.counters.downstream_reused.fetch_add(1, std::memory_order_relaxed);
      reset();
      return true;
    }
    pool->retire(s);
    reset();
    return true;
  }
  pool->retire(take_stream());
  reset();
  return true;
}

// ---- the connection's end ----------------------------------------------------------------------

net::Stream* DownstreamLink::take_stream() {
  if (conn_.leased && context_.pool) context_.pool->lease_ended();
  conn_.leased = false;
  return stream_.release();
}

void DownstreamLink::release_stream() {
  if (conn_.leased && context_.pool) context_.pool->lease_ended();
  conn_.leased = false;
  stream_.reset();  // net::drop(): closes on its own, its events go nowhere
}

void DownstreamLink::reset() {
  release_stream();
  ++generation_;
  conn_ = Connection{};
  timer_.stop();
}

void DownstreamLink::shut_down() {
  reset();
  shut_down_ = true;
}

void DownstreamLink::failed(metrics::DownstreamError why, const ReplySpec& spec, const std::string& detail) {
  timer_.stop();
  owner_.on_link_failed(why, spec, detail);
}

// ---- stream events -----------------------------------------------------------------------------

void DownstreamLink::on_connected(net::Stream& s, int status) {
  if (&s != stream_.get()) return;
  if (conn_.phase == Phase::Handshake) {
    // The TLS stream over the connection (after STARTTLS): its handshake is done.
    if (status != 0) {
      failed(metrics::DownstreamError::Protocol, replies::kDownstreamUnavailable, "TLS handshake failed");
      return;
    }
    if (log::enabled(spdlog::level::debug))
      if (const auto* tls = net::TlsStream::of(s))
        log::debug("downstream TLS established", {{"client", context_.client}, {"tls", tls->facts().received_clause()}});
    handshake_output(conn_.handshake.tls_established());
    return;
  }
  if (status != 0) {
    context_.reachable.store(false, std::memory_order_relaxed);
    failed(metrics::DownstreamError::Connect, replies::kDownstreamUnavailable, uv_strerror(status));
    return;
  }
  context_.reachable.store(true, std::memory_order_relaxed);
  s.set_nodelay();
  s.start_reading();
  conn_.phase = Phase::Handshake;
  arm_timer();
}

void DownstreamLink::on_data(net::Stream& s, std::string_view data) {
  if (&s != stream_.get()) return;
  if (conn_.untested) {
    conn_.untested = false;  // it answers: alive
    conn_.untested_sent.clear();
  }
  std::vector<smtp::Reply> replies;
  bool ok = conn_.parser.feed(data, replies);
  context_.counters.add(context_.counters.bytes[static_cast<int>(metrics::Direction::DownstreamToClient)], data.size());
  std::uint64_t generation = generation_;
  for (auto& r : replies) {
    if (generation != generation_) return;
    // The MTA counts errors per connection (Postfix: smtpd_soft/hard_error_limit); a next client
    // must not start with this one's.
    if (r.klass() >= 4) conn_.reusable = false;
    switch (conn_.phase) {
      case Phase::Handshake:
        handshake_output(conn_.handshake.feed(std::move(r)));
        break;
      case Phase::Ready:
        deliver(std::move(r));
        break;
      case Phase::None:
      case Phase::Connecting:
        return;
    }
  }
  if (!ok && generation == generation_)
    failed(metrics::DownstreamError::Protocol, replies::kDownstreamProtocol, conn_.parser.error());
}

void DownstreamLink::deliver(smtp::Reply reply) {
  if (conn_.in_flight == 0) {
    // Nothing asked: an MTA announcing its own close (421 on idle timeout). Its EOF follows.
    log::info("unsolicited downstream reply", {{"client", context_.client}, {"code", reply.code}});
    return;
  }
  if (--conn_.in_flight == 0) conn_.dot_in_flight = false;
  arm_timer();
  owner_.on_link_reply(std::move(reply));
}

void DownstreamLink::on_end(net::Stream& s, const net::StreamEnd& end) {
  if (&s != stream_.get()) return;
  if (conn_.untested && (conn_.in_flight > 0 || conn_.phase == Phase::Handshake)) {
    replace_dead_pooled();
    return;
  }
  if (conn_.phase != Phase::Ready) {
    // A TLS error (a certificate that fails downstream.tls, a broken handshake) is the MTA's
    // protocol failing, not a lost connection.
    bool tls = end.status == net::kStreamProtocolError;
    failed(tls ? metrics::DownstreamError::Protocol : metrics::DownstreamError::Closed,
           tls ? replies::kDownstreamUnavailable : replies::kDownstreamLost, end.detail);
    return;
  }
  timer_.stop();
  owner_.on_link_closed(end, conn_.in_flight == 0 && conn_.parser.idle());
}

void DownstreamLink::on_drained(net::Stream& s) {
  if (&s == stream_.get()) owner_.on_link_drained();
}

// ---- the timer ---------------------------------------------------------------------------------

void DownstreamLink::arm_timer() {
  if (shut_down_) return;
  bool waiting = conn_.phase == Phase::Connecting || conn_.phase == Phase::Handshake || conn_.in_flight > 0;
  if (!waiting || !stream_) {
    timer_.stop();
    return;
  }
  auto timeout = conn_.phase == Phase::Connecting ? config_.connect_timeout
                 : conn_.dot_in_flight           ? config_.data_end_timeout
                                                 : config_.reply_timeout;
  timer_.arm(&DownstreamLink::on_timer, static_cast<std::uint64_t>(timeout.count()));
}

void DownstreamLink::on_timer(uv_timer_t* t) {
  auto* link = static_cast<DownstreamLink*>(t->data);
  if (link->shut_down_ || !link->stream_) return;
  bool connecting = link->conn_.phase == Phase::Connecting;
  link->failed(connecting ? metrics::DownstreamError::Connect : metrics::DownstreamError::Timeout,
               connecting ? replies::kDownstreamUnavailable : replies::kDownstreamTimeout,
               connecting ? "connect timeout" : "reply timeout");
}

}  // namespace dotgate::proxy
