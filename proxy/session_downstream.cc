// proxy/session_downstream.cc — the downstream side of a Session: connecting, the greeting, the
// EHLO replay for a fresh connection, replies matched to their commands, timeouts, and aborts.
// Every downstream reply passes runtime_->replies (ReplyRewriter) before the client sees it;
// a reply the command cannot have means the downstream is desynchronised or broken, and the
// session ends with 421 rather than guess (Postfix smtpd_proxy: never pass on an unexpected reply).
#include "lib/log/log.h"
#include "lib/smtp/reply_rewrite.h"
#include "proxy/downstream_pool.h"
#include "proxy/session.h"

namespace dotgate::proxy {

// `use_pool`: take a pre-greeted connection from the worker's pool when it has one. Its greeting
// is handled here and now, as if it had just arrived: on_greeting() relays it to a client still
// waiting for its greeting, or replays EHLO, or lets pump() go on (it is reentrant-safe).
void Session::connect_downstream(bool replay, bool use_pool) {
  phase_ = DownstreamPhase::Connecting;
  replay_helo_ = replay;
  downstream_caps_ = {};
  downstream_pipelining_ = false;
  downstream_in_flight_ = 0;
  reply_parser_.reset();
  pooled_untested_ = false;
  untested_sent_.clear();
  resend_after_greeting_.clear();
  speculated_ehlo_.reset();
  speculated_used_ = false;
  downstream_history_ = {};
  downstream_greeting_.reset();
  reused_unproven_ = false;
  downstream_reusable_ = true;
  DownstreamPool* pool = use_pool && !no_pool_ ? host_.downstream_pool() : nullptr;
  if (auto taken = pool ? pool->take(runtime_) : std::nullopt) {
    downstream_ = taken->connection;
    downstream_->set_events(this);
    if (taken->leased) leased_downstream_ = downstream_;
    ++open_handles_;
    pooled_untested_ = true;
    downstream_history_ = taken->history;
    // A replay says HELO/EHLO first, which resets whatever an earlier client left.
    reused_unproven_ = taken->history.said_helo && !replay;
    if (taken->ehlo && replay) {
      if (helo_verb_ == smtp::Verb::Ehlo && helo_name_ == taken->ehlo_name) {
        // The replay this fresh connection needs is the very EHLO it said already.
        downstream_caps_ = smtp::parse_ehlo(*taken->ehlo);
        downstream_pipelining_ = downstream_caps_.pipelining;
        speculated_used_ = true;
        phase_ = DownstreamPhase::Ready;
        arm_downstream_timer();
        pump();
        return;
      }
      retire_taken(*pool);  // said another EHLO than this client's: not usable here
      pooled_untested_ = false;
      no_pool_ = true;
    } else {
      if (taken->ehlo) {
        speculated_ehlo_ = std::move(taken->ehlo);
        speculated_name_ = std::move(taken->ehlo_name);
      }
      phase_ = DownstreamPhase::Greeting;
      on_greeting(std::move(taken->greeting));
      return;
    }
  }
  downstream_ = net::TcpConnection::create(host_.loop(), this, host_.read_buffer());
  ++open_handles_;
  int rc = downstream_->connect(reinterpret_cast<const sockaddr*>(&runtime_->downstream_address));
  if (rc != 0) {
    downstream_failed(metrics::DownstreamError::Connect, replies::kDownstreamUnavailable, uv_strerror(rc));
    return;
  }
  downstream_timer_.arm(&Session::on_downstream_timer,
                        static_cast<std::uint64_t>(config_.downstream.connect_timeout.count()));
}

void Session::on_connected(net::TcpConnection& c, int status) {
  if (&c != downstream_ || state_ == State::Closing) return;
  if (status != 0) {
    host_.shared().downstream_reachable.store(false, std::memory_order_relaxed);
    downstream_failed(metrics::DownstreamError::Connect, replies::kDownstreamUnavailable, uv_strerror(status));
    return;
  }
  host_.shared().downstream_reachable.store(true, std::memory_order_relaxed);
  c.set_nodelay();
  c.start_reading();
  phase_ = DownstreamPhase::Greeting;
  arm_downstream_timer();
}

void Session::send_downstream(std::string_view bytes) {
  if (!downstream_) return;
  downstream_history_.last_sent_ms = uv_now(host_.loop());
  if (pooled_untested_) untested_sent_.append(bytes);  // one command line at most (see session.h)
  downstream_->write(bytes);
}

// The pooled connection we took ended before it answered anything: it was dead already (closed by
// the MTA a moment before we took it). Nothing we sent on it was acted upon, so the client is
// served on a fresh connection as if nothing happened: EHLO replayed, or the one command in
// flight sent again once the new greeting is in. Only once: a fresh connection is never retried.
void Session::replace_dead_pooled() {
  log::info("pooled downstream connection was dead, connecting afresh", {{"client", peer_}});
  bool was_replaying = phase_ == DownstreamPhase::Replaying;
  // The client's EHLO was answered on the dead one (a replay, or its speculated EHLO): say it again.
  bool replay = was_replaying || speculated_used_;
  std::string resend = std::move(untested_sent_);
  std::size_t in_flight = downstream_in_flight_;
  downstream_->close();
  downstream_ = nullptr;  // its on_closed still arrives and is counted
  connect_downstream(replay, /*use_pool=*/false);
  if (state_ == State::Closing) return;
  if (!was_replaying) {  // else what was lost is the replayed EHLO itself, said again anyway
    resend_after_greeting_ = std::move(resend);
    downstream_in_flight_ = in_flight;
  }
}

// Does the client's first command fit the pooled connection's state? downstream.pool.ehlo: it must
// be exactly the EHLO the connection said ahead. A connection an earlier session gave back: it
// must be HELO or EHLO, which resets what the earlier client left (RFC 5321 4.1.4).
bool Session::speculation_fits(const smtp::Command& cmd) const {
  if (reused_unproven_ && cmd.verb != smtp::Verb::Ehlo && cmd.verb != smtp::Verb::Helo) return false;
  return !speculated_ehlo_ || (cmd.verb == smtp::Verb::Ehlo && cmd.argument == speculated_name_);
}

// It does not: the MTA on this connection holds another EHLO (or HELO) than the client's. QUIT it
// (never used for this client) and open a fresh connection, without the pool (all of it said that
// EHLO; a reused one is as likely to hold an earlier client's).
void Session::drop_unfit_pooled() {
  log::debug("pooled connection does not fit the first command, fresh downstream connection", {{"client", peer_}});
  speculated_ehlo_.reset();
  reused_unproven_ = false;
  if (DownstreamPool* pool = host_.downstream_pool(); pool && downstream_) retire_taken(*pool);
  abort_downstream();
  no_pool_ = true;
}

// It does: the client gets the MTA's reply to this very command on this very connection, as if
// relayed now (the same rewrite, the same capabilities learnt); nothing goes downstream.
void Session::answer_from_speculation(smtp::Command cmd) {
  smtp::Reply reply = std::move(*speculated_ehlo_);
  speculated_ehlo_.reset();
  speculated_used_ = true;
  helo_name_ = cmd.argument;
  helo_verb_ = cmd.verb;
  PendingReply slot;
  slot.verb = cmd.verb;
  slot.from_downstream = true;
  pending_.push_back(std::move(slot));
  on_command_reply(pending_.back(), std::move(reply));
  if (state_ == State::Closing) return;
  flush_replies();
}

// The client said QUIT and every reply it was owed is out: the MTA gets its QUIT from the pool,
// which waits for the 221 (or closes after a short timeout), so the client's 221 never waits for
// the MTA and the MTA still sees a clean end. Only a connection at rest (nothing in flight, no half
// reply) can take a QUIT; any other is closed as before. True: the pool has it now.
bool Session::retire_downstream() {
  DownstreamPool* pool = host_.downstream_pool();
  if (!pool || !downstream_ || downstream_->closing() || phase_ != DownstreamPhase::Ready ||
      downstream_in_flight_ > 0 || state_ != State::Command || !reply_parser_.idle())
    return false;
  end_lease(downstream_);  // before give_back(): its own slot is the one it may fill again
  // max_sessions: the next client may have it, if nothing of this session would follow it there.
  if (downstream_reusable_ && downstream_greeting_ && !tx_.open && !replay_.active &&
      downstream_history_.junk < kMaxReusedJunk && downstream_history_.mails < kMaxReusedMails) {
    DownstreamPool::History history = downstream_history_;
    ++history.sessions;
    // Every connection of a session that said HELO/EHLO carries it (relayed, replayed or speculated).
    history.said_helo = history.said_helo || !helo_name_.empty();
    if (pool->give_back(downstream_, *downstream_greeting_, history, runtime_)) {
      host_.counters().downstream_reused.fetch_add(1, std::memory_order_relaxed);
      downstream_ = nullptr;
      --open_handles_;
      return true;
    }
  }
  pool->retire(downstream_);
  downstream_ = nullptr;
  --open_handles_;  // its on_closed goes to the pool; the timers keep this above zero
  return true;
}

void Session::retire_taken(DownstreamPool& pool) {
  end_lease(downstream_);
  pool.retire(downstream_);
  downstream_ = nullptr;
  --open_handles_;
}

void Session::end_lease(const net::TcpConnection* c) {
  if (!c || c != leased_downstream_) return;
  leased_downstream_ = nullptr;
  if (DownstreamPool* pool = host_.downstream_pool()) pool->lease_ended();
}

void Session::arm_downstream_timer() {
  if (state_ == State::Closing) return;
  bool waiting = phase_ == DownstreamPhase::Connecting || phase_ == DownstreamPhase::Greeting ||
                 phase_ == DownstreamPhase::Replaying || phase_ == DownstreamPhase::ReplayingMessage ||
                 downstream_in_flight_ > 0;
  if (!waiting) {
    downstream_timer_.stop();
    return;
  }
  auto timeout = phase_ == DownstreamPhase::Connecting ? config_.downstream.connect_timeout
                 : state_ == State::DotSent           ? config_.downstream.data_end_timeout
                                                      : config_.downstream.reply_timeout;
  downstream_timer_.arm(&Session::on_downstream_timer, static_cast<std::uint64_t>(timeout.count()));
}

void Session::on_downstream_timer(uv_timer_t* t) {
  auto* s = static_cast<Session*>(t->data);
  if (s->state_ == State::Closing) return;
  bool connecting = s->phase_ == DownstreamPhase::Connecting;
  s->downstream_failed(connecting ? metrics::DownstreamError::Connect : metrics::DownstreamError::Timeout,
                       connecting ? replies::kDownstreamUnavailable : replies::kDownstreamTimeout,
                       connecting ? "connect timeout" : "reply timeout");
}

void Session::downstream_failed(metrics::DownstreamError why, const ReplySpec& spec, const std::string& detail) {
  if (replay_.active) {
    // The fresh connection of a replay failed before any dot: the message is tempfailed (the
    // client keeps it), the session goes on and the next transaction reconnects.
    counters_.add(counters_.downstream_errors[static_cast<int>(why)]);
    replay_failed(detail);
    return;
  }
  counters_.add(counters_.downstream_errors[static_cast<int>(why)]);
  log::warn("downstream error", {{"client", peer_}, {"state", state_name(state_)}, {"error", detail}});
  if (state_ == State::DotSent && tx_.prdr) {
    // A PRDR client hears its per-recipient 4xx before the session's 421.
    for (auto& p : pending_) {
      if (p.is_dot && !p.ready) {
        p.ready = true;
        p.reply = make_reply(replies::kDotDownstreamError);
        prdr_wrap(p);
        finish_transaction(policy::Outcome::Tempfailed, p.reply);
        enter_state(State::Command);
        flush_replies();
        break;
      }
    }
  }
  if (tx_.open || state_ == State::Data || state_ == State::Verdict || state_ == State::DotSent)
    finish_transaction(policy::Outcome::Tempfailed, make_reply(spec));
  fail_session(spec, "downstream: " + detail);
}

void Session::abort_downstream() {
  if (downstream_) downstream_->close();
  downstream_ = nullptr;  // its on_closed still arrives and is counted
  phase_ = DownstreamPhase::None;
  downstream_caps_ = {};
  downstream_pipelining_ = false;
  downstream_in_flight_ = 0;
  barrier_ = false;
  reply_parser_.reset();
  speculated_ehlo_.reset();
  downstream_timer_.stop();
}

void Session::on_downstream_reply(smtp::Reply reply) {
  // The MTA counts errors per connection (Postfix: smtpd_soft/hard_error_limit); a next client
  // must not start with this one's.
  if (reply.klass() >= 4) downstream_reusable_ = false;
  switch (phase_) {
    case DownstreamPhase::Greeting:
      on_greeting(std::move(reply));
      return;
    case DownstreamPhase::Replaying:
      // The EHLO/HELO replayed on a fresh connection: the client already had its answer.
      if (reply.klass() != 2) {
        downstream_failed(metrics::DownstreamError::Protocol, replies::kDownstreamUnavailable,
                          "replayed " + std::string(smtp::verb_name(helo_verb_)) + " refused: " + std::to_string(reply.code));
        return;
      }
      if (helo_verb_ == smtp::Verb::Ehlo) downstream_caps_ = smtp::parse_ehlo(reply);
      downstream_pipelining_ = downstream_caps_.pipelining;
      downstream_ready();
      return;
    case DownstreamPhase::ReplayingMessage:
      on_replay_reply(std::move(reply));
      return;
    case DownstreamPhase::Ready:
      break;
    default:
      return;
  }
  PendingReply* slot = nullptr;
  for (auto& p : pending_) {
    if (p.from_downstream && !p.ready) {
      slot = &p;
      break;
    }
  }
  if (!slot) {
    // Nothing asked: an MTA announcing its own close (421 on idle timeout). Its EOF follows.
    log::info("unsolicited downstream reply", {{"client", peer_}, {"code", reply.code}});
    return;
  }
  --downstream_in_flight_;
  on_command_reply(*slot, std::move(reply));
  if (state_ == State::Closing) return;
  arm_downstream_timer();
  flush_replies();
  emit_deferred_log();
  if (state_ == State::Closing) return;
  pump();
}

void Session::on_greeting(smtp::Reply reply) {
  if (reply.klass() == 2) downstream_greeting_ = reply;
  if (replay_helo_) {
    // A fresh connection for the next transaction: the client saw its greeting long ago.
    if (reply.klass() != 2) {
      downstream_failed(metrics::DownstreamError::Protocol, replies::kDownstreamUnavailable,
                        "greeting on reconnect: " + std::to_string(reply.code));
      return;
    }
    phase_ = DownstreamPhase::Replaying;
    std::string wire = std::string(smtp::verb_name(helo_verb_)) + " " + helo_name_ + "\r\n";
    send_downstream(wire);
    arm_downstream_timer();
    return;
  }
  if (state_ == State::Greeting) {
    smtp::Reply greeting = runtime_->replies.rewrite(smtp::Stage::Greeting, std::move(reply));
    phase_ = DownstreamPhase::Ready;
    arm_downstream_timer();
    enter_state(State::Command);
    send_reply(greeting);
    if (greeting.code == 421) {
      // RFC 5321 3.1: after a 421 greeting the server closes.
      close_all();
      return;
    }
    if (greeting.code == 554) {
      // The MTA refused the session; whatever it would do next, dotgate answers 503 to all but
      // QUIT (RFC 5321 3.1) so no transaction can start. The downstream is not needed any more.
      refused_at_greeting_ = true;
      abort_downstream();
    }
    arm_client_timer();
    return;
  }
  // A fresh connection for an EHLO/HELO after an abort: the parked EHLO is the replay itself.
  if (reply.klass() != 2) {
    downstream_failed(metrics::DownstreamError::Protocol, replies::kDownstreamUnavailable,
                      "greeting on reconnect: " + std::to_string(reply.code));
    return;
  }
  downstream_ready();
}

void Session::downstream_ready() {
  if (replay_.active) {
    phase_ = DownstreamPhase::ReplayingMessage;
    send_replay_commands();
    return;
  }
  phase_ = DownstreamPhase::Ready;
  if (!resend_after_greeting_.empty()) {
    // The command the dead pooled connection swallowed (replace_dead_pooled): its slot still waits.
    std::string wire = std::move(resend_after_greeting_);
    resend_after_greeting_.clear();
    send_downstream(wire);
  }
  arm_downstream_timer();
  pump();
}

void Session::on_command_reply(PendingReply& slot, smtp::Reply reply) {
  using smtp::Verb;
  slot.ready = true;
  if (slot.is_dot) {
    if (!smtp::reply_allowed(smtp::ReplyContext::DataEnd, reply)) {
      // The message may or may not be queued: say "try again", never "accepted".
      slot.reply = make_reply(replies::kDotDownstreamError);
      counters_.add(counters_.downstream_errors[static_cast<int>(metrics::DownstreamError::Protocol)]);
      prdr_wrap(slot);
      finish_transaction(policy::Outcome::Tempfailed, slot.reply);
      enter_state(State::Command);
      abort_downstream();
      return;
    }
    slot.reply = runtime_->replies.rewrite(smtp::Stage::Dot, std::move(reply));
    prdr_wrap(slot);
    policy::Outcome outcome = slot.reply.klass() == 2   ? policy::Outcome::Accepted
                              : slot.reply.klass() == 4 ? policy::Outcome::Tempfailed
                                                        : policy::Outcome::Rejected;
    finish_transaction(outcome, slot.reply, /*log_later=*/true);  // written after the reply
    enter_state(State::Command);
    return;
  }
  if (slot.verb == Verb::Auth && reply.code == 334) {
    // AUTH passthrough: the challenge goes to the client, whose next line is the answer.
    slot.reply = std::move(reply);
    auth_continuation_ = true;
    barrier_ = false;
    return;
  }
  smtp::ReplyContext context = smtp::context_for(slot.verb);
  if (!smtp::reply_allowed(context, reply)) {
    downstream_failed(metrics::DownstreamError::Protocol, replies::kDownstreamProtocol,
                      "unexpected reply " + std::to_string(reply.code) + " to " + std::string(smtp::verb_name(slot.verb)));
    return;
  }
  switch (slot.verb) {
    case Verb::Ehlo:
      barrier_ = false;
      if (reply.klass() == 2) {
        downstream_caps_ = smtp::parse_ehlo(reply);
        downstream_pipelining_ = downstream_caps_.pipelining;
        reset_transaction();
        smtp::EhloOffer offer;
        offer.max_message_size = config_.smtp.max_message_size;
        offer.auth_passthrough = config_.smtp.auth_passthrough;
        offer.prdr = true;  // dotgate answers per recipient itself, whatever the MTA can do
        slot.reply = runtime_->replies.rewrite_ehlo(reply, offer);
        return;
      }
      break;
    case Verb::Helo:
      barrier_ = false;
      if (reply.klass() == 2) {
        downstream_caps_ = {};
        downstream_pipelining_ = false;
        reset_transaction();
      }
      break;
    case Verb::Mail:
      if (slot.generation != tx_generation_) break;  // an RSET or MAIL after it ended it
      tx_.open = reply.klass() == 2;
      break;
    case Verb::Rcpt:
      if (slot.generation != tx_generation_) break;
      if (tx_.recipients_in_flight > 0) --tx_.recipients_in_flight;
      tx_.recipient_replies.emplace_back(slot.recipient, reply.code);
      if (reply.klass() == 2) {
        tx_.recipients.push_back(slot.recipient);
        tx_.rcpt_lines.push_back(std::move(slot.line));
        tx_.recipient_profiles.push_back(slot.profile);
      } else {
        recipient_dropped(slot.profile);
      }
      break;
    case Verb::Data:
      barrier_ = false;
      if (reply.code == 354) {
        data_stream_.reset();
        spool_->reset();
        slot.reply = runtime_->replies.rewrite(smtp::stage_for(slot.verb), std::move(reply));
        // The 354 leaves in flush_replies() right after this; the bytes that follow are the body.
        enter_state(State::Data);
        arm_client_timer();
        return;
      }
      break;
    case Verb::Auth:
      barrier_ = false;
      break;
    default:
      break;
  }
  slot.reply = runtime_->replies.rewrite(smtp::stage_for(slot.verb), std::move(reply));
}

}  // namespace dotgate::proxy
