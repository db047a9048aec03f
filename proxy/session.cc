// proxy/session.cc — the client side of a Session: states, commands, timers and the close
// sequence. The replies' queue to the client is in session_replies.cc, the message (DATA,
// verdict, transaction end) in session_message.cc, the downstream side (connection, greeting,
// replies) in session_downstream.cc. See session.h for the flow.
#include "proxy/session.h"
#include "proxy/quarantine_writer.h"

#include "lib/net/tls_stream.h"

#include <cctype>
#include <utility>

#include "lib/log/log.h"
#include "proxy/downstream_pool.h"
#include "proxy/queue_id.h"

namespace dotgate::proxy {

Session::Session(SessionHost& host, std::shared_ptr<const Runtime> runtime)
    : host_(host),
      runtime_(std::move(runtime)),
      config_(runtime_->config),
      counters_(host.counters()),
      link_(*this, {host.loop(), host.connector(), host.downstream_pool(), host.counters(),
                    host.shared().downstream_reachable, {}},
            runtime_),
      data_stream_({config_.smtp.max_line_length, config_.smtp.max_message_size, config_.smtp.bare_line_ending}),
      spool_(std::make_shared<spool::Spool>(config_.spool.memory_threshold, config_.spool.directory)),
      chain_(runtime_->policies->make_chain({host.loop(), config_.spool.directory})) {
  client_timer_.init(host_.loop(), this);
  uv_timer_init(host_.loop(), &verdict_timer_);
  verdict_timer_.data = this;
  close_group_.add(reinterpret_cast<uv_handle_t*>(&client_timer_.handle));
  close_group_.add(reinterpret_cast<uv_handle_t*>(&verdict_timer_));
  close_group_.add(link_.timer_handle());
}

const char* Session::state_name(State s) {
  switch (s) {
    case State::ProxyHeader: return "proxy_header";
    case State::Greeting: return "greeting";
    case State::Command: return "command";
    case State::Data: return "data";
    case State::Verdict: return "verdict";
    case State::DotSent: return "dot";
    case State::Closing: return "closing";
  }
  return "?";
}

void Session::enter_state(State next) {
  if (log::enabled(spdlog::level::trace))
    log::event(spdlog::level::trace, "state", {{"client", peer_}, {"from", state_name(state_)}, {"to", state_name(next)}});
  state_ = next;
}

// ---- start --------------------------------------------------------------------------

void Session::start(uv_stream_t* server, const config::Endpoint& listener) {
  listener_ = &listener;
  listener_tls_ = listener.tls;
  require_tls_ = listener.require_tls;
  auto* tcp = net::TcpConnection::create(host_.loop(), this, host_.read_buffer());
  client_.reset(tcp);
  counters_.add(counters_.connections_open);
  counters_.add(counters_.connections_total);
  counted_open_ = true;
  if (tcp->accept_from(server) != 0) {
    close_all();
    return;
  }
  client_->set_nodelay();
  peer_ = client_->peer_name();
  local_ = tcp->local_name();
  if (listener.proxy_protocol) {
    start_proxy_header();  // greet() once the header named the client
    return;
  }
  greet();
}

void Session::greet(std::string_view already_read) {
  if (refusal_) {
    refuse_over_tls(already_read);
    return;
  }
  link_.set_client(peer_);
  if (listener_tls_ == config::ListenerTls::Implicit) {
    if (!runtime_->server_tls) {  // cannot happen: the config check requires `tls` for it
      close_all();
      return;
    }
    // Port 465 style: TLS from the first byte. The greeting written before the handshake is done
    // is held by the TLS stream; the command timer bounds a client that never finishes it.
    client_ = net::TlsStream::wrap(std::move(client_), runtime_->server_tls, net::TlsStream::Role::Server, this);
    tls_started_ = true;
    if (!client_) {
      close_all();
      return;
    }
  }
  client_->start_reading();  // from now: anything before our greeting is an early talker
  arm_client_timer();
  if (!already_read.empty()) {
    // Read along with a PROXY header (session_proxy_header.cc): on an implicit TLS listener the
    // client's first TLS flight (a balancer often sends its header and the ClientHello in one
    // segment); otherwise the client talking before our greeting, refused at once (on_data) and
    // before any downstream connection.
    if (tls_started_)
      static_cast<net::TlsStream*>(client_.get())->receive_early(already_read);
    else
      on_data(*client_, already_read);
    if (state_ == State::Closing) return;
  }
  connect_downstream(false);
}

void Session::shut_down() {
  if (state_ == State::Closing) return;
  if (refusal_) {  // its refusal is the 421 already: no second one
    close_all();
    return;
  }
  if (state_ == State::DotSent) {
    // The dot is relayed: the MTA may have queued the message already. A 421 now would tell the
    // client to send it again, a duplicate of our own making (RFC 1047). Its reply is owed and
    // comes, or the link fails, within data_end_timeout; the session ends right after it.
    log::info("shutting down after the reply to the dot", {{"client", peer_}});
    shut_down_after_dot_ = true;
    return;
  }
  fail_session(replies::kShuttingDown, "shutting down");
}

// ---- client events -----------------------------------------------------------------------------

void Session::on_data(net::Stream&, std::string_view data) {
  if (state_ == State::Closing) return;
  if (state_ == State::ProxyHeader) {
    on_proxy_header_data(data);
    return;
  }
  if (refusal_) return;  // a refused client's commands are not read (its 421 says why)
  if (state_ == State::Greeting) {
    // RFC 5321 4.3.1: the client waits for the greeting. One that talks first is a spam bot or a
    // desynchronised peer; nothing it said can be trusted to line up with our replies.
    log::info("early talker", {{"client", peer_}});
    fail_session(replies::kEarlyTalker, "early talker");
    return;
  }
  client_in_.append(data);
  arm_client_timer();
  pump();
  if (state_ != State::Closing && client_ && client_in_.size() - client_pos_ > kMaxClientBuffer) {
    client_->stop_reading();
    client_paused_ = true;
  }
}

void Session::on_end(net::Stream&, const net::StreamEnd& end) {
  if (state_ == State::Closing) return;
  if (state_ == State::ProxyHeader) {
    refuse_proxy_header(metrics::ProxyHeaderRefusal::Closed, end.clean() ? "eof" : end.detail);
    return;
  }
  if (refusal_) {
    log::debug("refused client gone", {{"client", peer_}, {"error", end.clean() ? "eof" : end.detail}});
    close_all();
    return;
  }
  {
    if (end.clean() && client_done_talking()) {
      // A half-close, not a disconnect: Exim sends QUIT right after the dot and shuts its side
      // down, then reads the reply to the dot (Postfix sends the QUIT too). The client asked for
      // everything it wants; it is answered, and the session closes after the last reply. A
      // client that really left gets nothing it can read, but a message is still relayed only
      // after its whole judgement (seed 004: a buffered QUIT "finally accepts the message").
      log::info("client closed its sending side", {{"client", peer_}, {"state", state_name(state_)}});
      client_ended_ = true;
      client_paused_ = false;  // nothing more to read
      pump();
      return;
    }
    // The client is gone: whatever is held is abandoned. Closing the downstream before any dot
    // means it queues nothing (invariant 2; the abort loophole of seed 004 stays closed).
    log::info("client disconnected", {{"client", peer_}, {"state", state_name(state_)},
                                       {"error", end.clean() ? "eof" : end.detail}});
    if (tx_.open || state_ == State::Data || state_ == State::Verdict)
      finish_transaction(policy::Outcome::Aborted, smtp::Reply::make(421, "4.4.2", "client disconnected"));
    close_all();
  }
}

void Session::on_drained(net::Stream&) {
  if (state_ == State::Closing) return;
  pump();  // a client that stopped reading its replies held the command loop; it reads again
}

// ---- the command loop --------------------------------------------------------------------------

bool Session::can_take_command() const {
  if (state_ != State::Command || quit_ || policy_running_ || lookup_running_ || barrier_) return false;
  if (!link_.pipelining() && link_.in_flight() > 0) return false;
  // A client that does not read its replies must not make us queue more of them.
  if (client_ && client_->queued_bytes() > kMaxClientBuffer) return false;
  return true;
}

void Session::pump() {
  if (in_pump_) {
    pump_again_ = true;  // a completion inside the loop: the loop itself goes round again
    return;
  }
  in_pump_ = true;
  do {
    pump_again_ = false;
    while (state_ != State::Closing) {
      if (state_ == State::Data) {
        feed_data();
        if (state_ == State::Data) break;  // needs more input
        continue;
      }
      if (!can_take_command()) break;
      if (!parked_) {
        if (!take_command()) break;
        continue;
      }
      ParkedCommand& p = *parked_;
      if (p.command.verb == smtp::Verb::Starttls) {
        if (!pending_.empty()) break;  // RFC 2920: it ends a group; the replies before it go first
        start_tls();
        continue;
      }
      if (p.command.verb == smtp::Verb::Rcpt && !p.profiled) {
        resolve_recipient(p);
        continue;  // decided at once, answered (parked_ gone), or lookup_running_ stops the loop
      }
      if (!p.filtered && needs_policy(p.command)) {
        run_policy(p);
        continue;  // answered at once, or policy_running_ stops the loop
      }
      p.filtered = true;
      if (!link_.ready()) {
        if (link_.phase() == DownstreamLink::Phase::None) {
          bool is_helo = p.command.verb == smtp::Verb::Ehlo || p.command.verb == smtp::Verb::Helo;
          connect_downstream(!is_helo && !helo_name_.empty());
        }
        break;  // resumes when the downstream is ready (on_link_ready)
      }
      if (!link_.fits_first_command(p.command)) continue;  // phase None: a fresh connection for it
      smtp::Command cmd = std::move(p.command);
      parked_.reset();
      if (auto speculated = link_.take_speculated_reply(cmd)) {
        answer_from_speculation(std::move(cmd), std::move(*speculated));
        continue;
      }
      proceed(std::move(cmd));
    }
  } while (pump_again_ && state_ != State::Closing);
  in_pump_ = false;
  // Compact the input buffer once consumed bytes dominate it.
  if (client_pos_ > 0 && (client_pos_ == client_in_.size() || client_pos_ > 16 * 1024)) {
    client_in_.erase(0, client_pos_);
    client_pos_ = 0;
  }
  close_if_client_finished();
  if (client_paused_ && state_ != State::Closing && client_ && client_in_.size() - client_pos_ <= kMaxClientBuffer &&
      link_.queued_bytes() <= kMaxDownstreamQueue) {
    client_paused_ = false;
    client_->start_reading();
  }
}

bool Session::take_command() {
  std::string_view input(client_in_.data() + client_pos_, client_in_.size() - client_pos_);
  smtp::LineResult r = line_reader_.next(input);
  client_pos_ += r.consumed;
  switch (r.kind) {
    case smtp::LineResult::Kind::Incomplete:
      return false;
    case smtp::LineResult::Kind::TooLong:
      local_error(make_reply(replies::kLineTooLong));
      return true;
    case smtp::LineResult::Kind::Line:
      break;
  }
  if (++commands_ > config_.smtp.max_commands) {
    fail_session(replies::kTooManyCommands, "too many commands");
    return true;
  }
  smtp::Command cmd;
  if (auth_continuation_) {
    // The line answers the downstream's 334: relay it as is, it is not a command.
    auth_continuation_ = false;
    cmd.verb = smtp::Verb::Auth;
    cmd.line.assign(r.line);
    parked_ = ParkedCommand{std::move(cmd), true};
    return true;
  }
  cmd = smtp::parse_command(r.line);
  if (check(cmd)) parked_ = ParkedCommand{std::move(cmd), false};
  return true;
}

// The check step: syntax, sequence and limits decided here, without the downstream.
bool Session::check(const smtp::Command& cmd) {
  using smtp::Verb;
  if (!cmd.ok()) {
    // The parser words the refusal as a whole reply line ("501 5.5.4 Syntax: ..."): it knows
    // which rule the line broke. Anything else falls back to the table's syntax error.
    smtp::Reply reply = make_reply(replies::kSyntaxError);
    const std::string& e = cmd.error;
    if (e.size() > 4 && e[3] == ' ' && std::isdigit(static_cast<unsigned char>(e[0])) &&
        std::isdigit(static_cast<unsigned char>(e[1])) && std::isdigit(static_cast<unsigned char>(e[2]))) {
      int code = std::stoi(e.substr(0, 3));
      if (code >= 500 && code < 600) reply = smtp::Reply{code, {e.substr(4)}};
    }
    local_error(reply);
    return false;
  }
  if (refused_at_greeting_ && cmd.verb != Verb::Quit) {
    local_error(make_reply(replies::kRefusedAtGreeting));
    return false;
  }
  // XFORWARD (session_identity.cc): answered here for a peer in smtp.xforward_from, 502 below for
  // anyone else; what it forwarded ends with the transaction (RSET, as its dot) or a new HELO/EHLO.
  if (cmd.verb == Verb::Xforward && xforward_trusted()) {
    answer_xforward(cmd);
    return false;
  }
  if (cmd.verb == Verb::Rset || cmd.verb == Verb::Helo || cmd.verb == Verb::Ehlo) forwarded_.reset();
  switch (cmd.verb) {
    case Verb::Mail:
      if (require_tls_ && !tls_started_) {
        local_error(make_reply(replies::kTlsRequired));  // RFC 3207 4
        return false;
      }
      if (hello_after_tls_) {
        local_error(make_reply(replies::kHelloAfterTls));
        return false;
      }
      if (host_.shared().draining.load(std::memory_order_relaxed)) {
        fail_session(replies::kShuttingDown, "draining");
        return false;
      }
      if (const smtp::EsmtpParam* size = cmd.param("SIZE"); size && smtp::declared_size_exceeds(size->value, config_.smtp.max_message_size)) {
        // RFC 1870 6.1: we announced SIZE; a larger declaration is refused before any byte.
        queue_local(replies::kMessageTooBig);
        return false;
      }
      if (const smtp::EsmtpParam* prdr = cmd.param("PRDR"); prdr && prdr->has_value) {
        local_error(make_reply(replies::kPrdrSyntax));  // draft-hall-prdr-00: PRDR takes no value
        return false;
      }
      return true;
    case Verb::Rcpt:
      if (tx_.recipients.size() + tx_.recipients_in_flight >= config_.smtp.max_recipients) {
        queue_local(replies::kTooManyRecipients);
        tx_.recipient_replies.emplace_back(cmd.address, replies::kTooManyRecipients.code);
        return false;
      }
      return true;  // its profile and the split come next (resolve_recipient)
    case Verb::Vrfy:
      queue_local(config_.smtp.vrfy == config::VrfyMode::Reply252 ? replies::kVrfy252 : replies::kVrfyDisabled);
      return false;
    case Verb::Expn:
      queue_local(replies::kExpnDisabled);
      return false;
    case Verb::Auth:
      if (config_.smtp.auth_passthrough) return true;
      local_error(make_reply(replies::kNotImplemented));
      return false;
    case Verb::Starttls:
      return check_starttls();
    case Verb::Bdat:      // CHUNKING not offered: BDAT would bypass the dot we hold
    case Verb::Xclient:   // a client must never set its identity for the MTA
    case Verb::Xforward:
      local_error(make_reply(replies::kNotImplemented));
      return false;
    case Verb::Quit:
      quit_ = true;
      queue_local(make_reply(replies::kQuitLocal), true);
      return false;
    case Verb::Rset:
    case Verb::Noop:
    case Verb::Help:
      if (link_.phase() == DownstreamLink::Phase::None) {
        // No downstream right now (the last transaction was refused): nothing to reset there.
        if (cmd.verb == Verb::Rset) reset_transaction();
        queue_local(cmd.verb == Verb::Help ? replies::kHelpLocal : replies::kOkLocal);
        return false;
      }
      return true;
    default:
      return true;
  }
}

bool Session::needs_policy(const smtp::Command& cmd) const {
  return (cmd.verb == smtp::Verb::Mail || cmd.verb == smtp::Verb::Rcpt) && chain_ && chain_->size() > 0;
}

// The filter step: MAIL and RCPT go through the policy chain before they are relayed.
void Session::run_policy(ParkedCommand& parked) {
  policy_running_ = true;
  policy::Envelope env = envelope();
  policy::Chain::Hook hook = policy::Chain::Hook::Rcpt;
  if (parked.command.verb == smtp::Verb::Mail) {
    hook = policy::Chain::Hook::Mail;
    env.mail_from = parked.command.address;
    env.mail_params = parked.command.params;
    env.recipients.clear();
  } else {
    env.profile = profile_of(parked.command.address);
  }
  chain_->run(hook, std::move(env), parked.command.address, nullptr, [this](policy::Verdict v) {
    policy_running_ = false;
    if (state_ == State::Closing || !parked_) return;
    if (v.passed()) {
      parked_->filtered = true;
    } else {
      if (parked_->command.verb == smtp::Verb::Rcpt) {
        tx_.recipient_replies.emplace_back(parked_->command.address, v.reply.code);
        recipient_dropped(profile_of(parked_->command.address));
      }
      log::info("policy refused", {{"client", peer_}, {"command", std::string(smtp::verb_name(parked_->command.verb))},
                                   {"reply", v.reply.code}, {"reason", v.reason}});
      parked_.reset();
      queue_local(v.reply);
    }
    pump();
  });
}

// The proceed step: relay the command downstream and hold a slot for its reply.
void Session::proceed(smtp::Command cmd) {
  using smtp::Verb;
  // A forwarded client goes to the MTA ahead of its MAIL (session_identity.cc); the MAIL waits.
  if (cmd.verb == Verb::Mail && !std::exchange(identity_forwarded_, false) && forward_identity(cmd)) return;
  PendingReply slot;
  slot.verb = cmd.verb;
  slot.from_downstream = true;
  switch (cmd.verb) {
    case Verb::Ehlo:
    case Verb::Helo:
      hello_after_tls_ = false;
      helo_name_ = cmd.argument;
      helo_verb_ = cmd.verb;
      barrier_ = true;  // the reply decides what may follow (PIPELINING)
      break;
    case Verb::Mail:
      reset_transaction();
      link_.count_mail();
      tx_.queue_id = make_queue_id();
      tx_.prdr = cmd.param("PRDR") != nullptr;
      if (tx_.prdr) cmd.line = relayed_mail_line(cmd);  // dotgate answers per recipient itself
      tx_.mail_line = cmd.line;
      tx_.mail_from = cmd.address;
      tx_.mail_params = cmd.params;
      tx_.started_ms = uv_now(host_.loop());
      break;
    case Verb::Rcpt:
      slot.recipient = cmd.address;
      slot.line = cmd.line;
      slot.profile = profile_of(cmd.address);
      ++tx_.recipients_in_flight;
      break;
    case Verb::Data:
      barrier_ = true;  // RFC 2920 3.1: DATA ends a group; the body waits for 354
      break;
    case Verb::Auth:
      barrier_ = true;  // a 334 means the next line is not a command
      link_.not_reusable();  // the MTA's session is authenticated now: never another client's
      break;
    case Verb::Rset:
      // Now, not at its reply: a MAIL pipelined right after it starts the next transaction, and
      // the RSET's 250 (RFC 5321: RSET always succeeds) must not wipe that one.
      reset_transaction();
      link_.count_junk();
      break;
    case Verb::Noop:
      link_.count_junk();
      break;
    default:
      link_.not_reusable();  // a command we do not follow: its effect on the MTA is unknown
      break;
  }
  slot.generation = tx_generation_;
  pending_.push_back(std::move(slot));
  std::string wire = std::move(cmd.line);
  wire += "\r\n";
  link_.send_command(wire);
}

// ---- half-closed clients -----------------------------------------------------------------------

bool Session::client_done_talking() const {
  if (state_ == State::DotSent) return true;  // the dot is relayed: its reply is owed either way
  if (state_ == State::Data || state_ == State::Greeting) return false;  // a body line is no QUIT
  // A QUIT among the lines not yet taken (pipelined after the dot, or after other commands).
  std::string_view rest(client_in_.data() + client_pos_, client_in_.size() - client_pos_);
  while (!rest.empty()) {
    std::size_t lf = rest.find('\n');
    if (lf == std::string_view::npos) return false;  // an unfinished line is no command
    std::string_view line = rest.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
    if (line.size() == 4 && (line[0] | 0x20) == 'q' && (line[1] | 0x20) == 'u' && (line[2] | 0x20) == 'i' &&
        (line[3] | 0x20) == 't')
      return true;
    rest.remove_prefix(lf + 1);
  }
  return false;
}

void Session::close_if_client_finished() {
  // After a half-close: once every reply owed is out and no command is left, there is nothing
  // more to say (the QUIT, if any, closed the session already).
  if (!client_ended_ || state_ != State::Command) return;
  if (!pending_.empty() || parked_ || policy_running_ || lookup_running_) return;
  std::string_view rest(client_in_.data() + client_pos_, client_in_.size() - client_pos_);
  if (rest.find('\n') != std::string_view::npos) return;  // a command still to take
  close_all();
}

// ---- timers ------------------------------------------------------------------------------------

void Session::arm_client_timer() {
  if (state_ == State::Closing) return;
  auto timeout = state_ == State::Data ? config_.smtp.data_timeout : config_.smtp.command_timeout;
  if (state_ == State::ProxyHeader) timeout = config_.proxy_protocol_timeout;  // armed once, at accept
  client_timer_.arm(&Session::on_client_timer, static_cast<std::uint64_t>(timeout.count()));
}

void Session::on_client_timer(uv_timer_t* t) {
  auto* s = static_cast<Session*>(t->data);
  if (s->state_ == State::Closing) return;
  if (s->state_ == State::ProxyHeader) {
    s->refuse_proxy_header(metrics::ProxyHeaderRefusal::Timeout, "no complete header in time");
    return;
  }
  if (s->refusal_) {
    log::info("refused client did not finish its TLS handshake in time", {{"client", s->peer_}});
    s->close_all();  // its handshake never finished: nothing can be said to it
    return;
  }
  // Not the client's fault when it is waiting for us (a reply, a verdict): the downstream timer
  // and the verdict deadline bound those waits.
  bool waiting_for_us = s->state_ == State::Verdict || s->state_ == State::DotSent || s->state_ == State::Greeting ||
                        !s->pending_.empty() || s->policy_running_ || s->lookup_running_ || s->parked_.has_value();
  if (waiting_for_us) {
    s->arm_client_timer();
    return;
  }
  log::info("client timeout", {{"client", s->peer_}, {"state", state_name(s->state_)}});
  if (s->state_ == State::Data || s->tx_.open)
    s->finish_transaction(policy::Outcome::Aborted, s->make_reply(replies::kClientTimeout));
  s->fail_session(replies::kClientTimeout, "client timeout");
}

// ---- the end -----------------------------------------------------------------------------------

void Session::fail_session(const ReplySpec& spec, const std::string& reason) {
  if (state_ == State::Closing) return;
  log::info("session closed", {{"client", peer_}, {"reply", spec.code}, {"reason", reason}});
  pending_.clear();  // the replies still owed will never come; the 421 stands for all of them
  send_reply(make_reply(spec));
  close_all();
}

void Session::close_all() {
  if (state_ == State::Closing) return;
  end_tls_refusal();
  emit_deferred_log();
  enter_state(State::Closing);
  cancel_lookup();  // no answer may reach a session on its way out
  policy::Chain::abandon(std::move(chain_));  // required policies still run; the rest stop
  for (auto& run : judgement_.runs) policy::Chain::abandon(std::move(run.chain));  // other profiles
  client_timer_.stop();
  uv_timer_stop(&verdict_timer_);
  link_.shut_down();  // never a dot: the downstream queues nothing
  // The last reply still reaches the client; but a TLS stream whose handshake never finished
  // would hold it for a handshake that is not coming: that one closes now.
  const net::TlsStream* tls = client_ ? net::TlsStream::of(*client_) : nullptr;
  net::drop(client_.release(), /*flush=*/!tls || tls->handshake_done());
  close_group_.close([this] {
    if (keeping_) keeping_->detach();  // the copy is finished without us
    if (counted_open_) counters_.sub(counters_.connections_open);
    host_.session_closed(this);
    delete this;
  });
}

}  // namespace dotgate::proxy
