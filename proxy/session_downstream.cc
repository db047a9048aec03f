// proxy/session_downstream.cc — the downstream side of a Session: what it asks of its
// DownstreamLink (a connection for the next step, the pool's part at the start and the end), what
// it does with the link's events (the greeting for the client, replies matched to their commands
// in order, failures), and aborts.
// Every downstream reply passes runtime_->replies (ReplyRewriter) before the client sees it;
// a reply the command cannot have means the downstream is desynchronised or broken, and the
// session ends with 421 rather than guess (Postfix smtpd_proxy: never pass on an unexpected reply).
#include "lib/log/log.h"
#include "lib/smtp/reply_rewrite.h"
#include "proxy/downstream_pool.h"
#include "proxy/session.h"

namespace dotgate::proxy {

void Session::connect_downstream(bool replay) {
  barrier_ = false;
  smtp::Handshake::Plan plan;
  // The client waits for its greeting only at the very start; later connections are greeted for
  // the next transaction (or its replay), and their greeting must be a 2xx.
  plan.relay_greeting = state_ == State::Greeting;
  if (replay) {
    // XCLIENT for a forwarded client (session_identity.cc): its HELO, not the peer's, as Postfix's
    // smtpd would otherwise take the replayed name for the client's.
    bool forwarded_helo = config_.downstream.xclient && !forwarded_.helo().empty();
    plan.hello = std::string(smtp::verb_name(helo_verb_)) + " " + (forwarded_helo ? forwarded_.helo() : helo_name_);
  }
  using Tls = smtp::Handshake::Plan::Tls;
  switch (config_.downstream.starttls) {
    case config::DownstreamStartTls::Off: plan.starttls = Tls::Off; break;
    case config::DownstreamStartTls::Opportunistic: plan.starttls = Tls::Opportunistic; break;
    case config::DownstreamStartTls::Required: plan.starttls = Tls::Required; break;
  }
  if (config_.downstream.xclient) plan.xclient = std::make_shared<const smtp::ClientIdentity>(client_identity());
  if (plan.xclient || plan.starttls != Tls::Off) plan.own_hello = "EHLO " + config_.smtp.hostname;
  link_.open(std::move(plan));
}

// Who the client is, for XCLIENT: what this session knows of it now. NAME: dotgate does no
// reverse lookup, and without NAME the MTA would keep dotgate's own name for the client.
smtp::ClientIdentity Session::client_identity() const {
  smtp::ClientIdentity who;
  if (forwarded_.active()) {
    // What the peer forwarded (XFORWARD), never mixed with the peer's own attributes: the
    // destination the client reached is the peer's business, not dotgate's listener.
    const smtp::ClientIdentity& f = *forwarded_.attributes();
    who.name = f.name;
    who.addr = f.addr;
    who.port = f.port;
    who.helo = f.helo;
    who.proto = f.proto;
    return who;
  }
  auto split = [](const std::string& name, std::optional<std::string>& addr, std::optional<std::string>& port) {
    std::size_t colon = name.rfind(':');
    if (colon == std::string::npos) return;
    std::string host = name.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    addr = host;
    port = name.substr(colon + 1);
  };
  who.name = std::string(smtp::kUnavailable);
  split(peer_, who.addr, who.port);
  split(local_, who.dest_addr, who.dest_port);
  if (!helo_name_.empty()) {
    who.helo = helo_name_;
    who.proto = helo_verb_ == smtp::Verb::Ehlo ? "ESMTP" : "SMTP";
  }
  return who;
}

// ---- DownstreamLink::Owner ---------------------------------------------------------------------

void Session::on_link_greeting(smtp::Reply reply) {
  smtp::Reply greeting = runtime_->replies.rewrite(smtp::Stage::Greeting, std::move(reply));
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
}

void Session::on_link_ready() {
  if (state_ == State::Closing) return;
  if (replay_.active) {
    send_replay_commands();
    return;
  }
  pump();
}

void Session::on_link_reply(smtp::Reply reply) {
  if (state_ == State::Closing) return;
  if (replay_.active) {
    on_replay_reply(std::move(reply));
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
    // The link owed a reply that no slot waits for any more (a 421 replaced them): drop it.
    log::info("downstream reply nobody waits for", {{"client", peer_}, {"code", reply.code}});
    return;
  }
  on_command_reply(*slot, std::move(reply));
  if (state_ == State::Closing) return;
  flush_replies();
  emit_deferred_log();
  if (state_ == State::Closing) return;
  if (shut_down_after_dot_ && state_ != State::DotSent) {
    fail_session(replies::kShuttingDown, "shutting down");  // the dot's reply is out: now the 421
    return;
  }
  pump();
}

void Session::on_link_failed(metrics::DownstreamError why, const ReplySpec& spec, const std::string& detail) {
  if (state_ == State::Closing) return;
  downstream_failed(why, spec, detail);
}

void Session::on_link_closed(const net::StreamEnd& end, bool idle) {
  if (state_ == State::Closing) return;
  if (idle && state_ == State::Command && !tx_.open) {
    // An MTA may close an idle connection (its own timeout, a restart). Nothing was lost: the
    // next command that needs it opens a new one.
    log::info("downstream closed while idle", {{"client", peer_}});
    abort_downstream();
    return;
  }
  downstream_failed(metrics::DownstreamError::Closed, replies::kDownstreamLost, end.detail);
}

void Session::on_link_drained() {
  if (state_ == State::Closing) return;
  if (client_paused_ && client_) {
    client_paused_ = false;
    client_->start_reading();
    pump();
  }
}

// ---- the pool's part ---------------------------------------------------------------------------

// The pool said exactly this EHLO ahead of the client: the client gets the MTA's reply to this
// very command on this very connection, as if relayed now (the same rewrite, the same
// capabilities learnt); nothing goes downstream.
void Session::answer_from_speculation(smtp::Command cmd, smtp::Reply reply) {
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
  if (state_ != State::Command) return false;
  return link_.retire(/*reusable=*/!tx_.open && !replay_.active, /*client_said_helo=*/!helo_name_.empty());
}

void Session::downstream_failed(metrics::DownstreamError why, const ReplySpec& spec, const std::string& detail) {
  counters_.add(counters_.downstream_errors[static_cast<int>(why)]);
  if (replay_.active) {
    // The fresh connection of a replay failed before any dot: the message is tempfailed (the
    // client keeps it), the session goes on and the next transaction reconnects.
    replay_failed(detail);
    return;
  }
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
  link_.reset();  // before any dot: the MTA queues nothing
  barrier_ = false;
}

void Session::on_command_reply(PendingReply& slot, smtp::Reply reply) {
  using smtp::Verb;
  if (slot.internal) return identity_reply(slot, reply);  // dotgate's XFORWARD: not the client's
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
    finish_transaction(policy::outcome_of(slot.reply), slot.reply, /*log_later=*/true);  // written after the reply
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
        link_.hello_answered("EHLO", reply);
        reset_transaction();
        smtp::EhloOffer offer;
        offer.max_message_size = config_.smtp.max_message_size;
        offer.auth_passthrough = config_.smtp.auth_passthrough;
        offer.prdr = true;  // dotgate answers per recipient itself, whatever the MTA can do
        offer.starttls = listener_tls_ == config::ListenerTls::StartTls && !tls_started_ && runtime_->server_tls;
        offer.xforward = xforward_trusted();  // the Postfix in front (smtp.xforward_from) alone
        slot.reply = runtime_->replies.rewrite_ehlo(reply, offer);
        return;
      }
      break;
    case Verb::Helo:
      barrier_ = false;
      if (reply.klass() == 2) {
        link_.hello_answered("HELO", reply);
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
        prepend_trace_header();
        slot.reply = runtime_->replies.rewrite(smtp::stage_for(slot.verb), std::move(reply));
        // The 354 leaves in flush_replies() right after this; the bytes that follow are the body.
        enter_state(State::Data);
        arm_client_timer();
        return;
      }
      break;
    case Verb::Auth:
      barrier_ = false;
      if (reply.code == 235) client_authenticated_ = true;  // RFC 4954: for the trace header's ESMTPA
      break;
    default:
      break;
  }
  slot.reply = runtime_->replies.rewrite(smtp::stage_for(slot.verb), std::move(reply));
}

}  // namespace dotgate::proxy
