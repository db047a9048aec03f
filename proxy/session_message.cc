// proxy/session_message.cc — the message part of a Session: the body through the DataStream to
// the downstream and the spool, the verdict with the dot held, and the transaction's end (its
// summary log line, counters and the policies' `finished`). See session.h for the flow.
#include <algorithm>
#include <cmath>
#include <ctime>

#include "lib/log/log.h"
#include "lib/net/tls_stream.h"
#include "lib/quarantine/quarantine.h"
#include "lib/smtp/received_header.h"
#include "proxy/quarantine_writer.h"
#include "proxy/session.h"

namespace dotgate::proxy {

// ---- DATA and the verdict ----------------------------------------------------------------------

// smtp.trace_header: dotgate's Received field, written at the downstream's 354 before the
// client's first body byte. It goes where the body goes: downstream and into the spool, so the
// verdict services judge the message the MTA gets, and every replay of the spool (header edits,
// PRDR with fewer recipients) carries it exactly once. It is not counted against
// smtp.max_message_size (the client's bytes are; what it was promised in EHLO SIZE stays true),
// nor in the log line's size. It is wire-safe by construction (received_header.h: folded,
// CRLF, no line starting with '.'), so it bypasses the DataStream.
void Session::prepend_trace_header() {
  config::TraceHeader mode = config_.smtp.trace_header;
  if (mode == config::TraceHeader::Off) return;
  const net::TlsStream* tls = client_ ? net::TlsStream::of(*client_) : nullptr;
  bool encrypted = tls && tls->handshake_done();
  if (mode == config::TraceHeader::Tls && !encrypted) return;
  // A client forwarded by XFORWARD came through the Postfix in front, which wrote this hop's
  // Received itself; an intermediate proxy adds none (Postfix's smtpd does the same).
  if (forwarded_.active()) return;
  smtp::ReceivedFacts facts;
  facts.helo = helo_name_;
  facts.client_ip = client_ip();
  facts.by = config_.smtp.hostname;
  facts.esmtp = helo_verb_ != smtp::Verb::Helo;
  facts.authenticated = client_authenticated_;
  facts.queue_id = tx_.queue_id;
  if (encrypted) {
    tls::TlsFacts t = tls->facts();
    facts.tls_version = std::move(t.version);
    facts.tls_cipher = std::move(t.cipher);
    facts.tls_cipher_iana = std::move(t.cipher_iana);
    facts.tls_bits = t.bits;
    facts.tls_alg_bits = t.alg_bits;
  }
  facts.unix_time = static_cast<std::int64_t>(std::time(nullptr));
  std::string header = smtp::received_header(facts);
  counters_.add(counters_.bytes[static_cast<int>(metrics::Direction::ClientToDownstream)], header.size());
  spool_->append(header);
  link_.send_body(header);
}

void Session::feed_data() {
  std::string_view input(client_in_.data() + client_pos_, client_in_.size() - client_pos_);
  if (input.empty()) return;
  std::string& out = data_out_;  // reused: no allocation per read on the body's path
  out.clear();
  // The stream appends line by line: sized once here, not grown by doubling. The output is the
  // input give or take a few bytes (a CR added to a bare LF, a stuffed dot); growth covers more.
  out.reserve(input.size() + 64);
  smtp::DataStream::Progress p = data_stream_.feed(input, out);
  client_pos_ += p.consumed;
  if (!out.empty() && data_stream_.fault() == smtp::DataFault::None && link_.connected()) {
    counters_.add(counters_.bytes[static_cast<int>(metrics::Direction::ClientToDownstream)], out.size());
    spool_->append(out);
    if (p.ended) {
      // The last piece of the body waits and leaves with the dot, if the dot leaves at all: one
      // write and one segment fewer per message. The MTA waits for the dot either way.
      return run_verdict();
    }
    link_.send_body(out);
    if (link_.queued_bytes() > kMaxDownstreamQueue && client_ && !client_paused_) {
      client_->stop_reading();
      client_paused_ = true;
    }
  }
  if (p.ended) {
    out.clear();  // nothing held back (sent already, or a fault): the dot leaves alone
    run_verdict();
  }
}

void Session::run_verdict() {
  enter_state(State::Verdict);
  arm_client_timer();
  smtp::DataFault fault = data_stream_.fault();
  if (fault != smtp::DataFault::None || spool_->failed()) {
    const ReplySpec& spec = fault == smtp::DataFault::LineTooLong    ? replies::kDataLineTooLong
                            : fault == smtp::DataFault::BareLineEnding ? replies::kDataBareLineEnding
                            : fault == smtp::DataFault::TooBig         ? replies::kMessageTooBig
                                                                       : replies::kInternalError;
    on_verdict(policy::Verdict{policy::Action::Fail, make_reply(spec), "data stream"});
    return;
  }
  start_judgement();
}

void Session::await_dot_reply() {
  enter_state(State::DotSent);
  PendingReply slot;
  slot.verb = smtp::Verb::Data;
  slot.from_downstream = true;
  slot.is_dot = true;
  pending_.push_back(std::move(slot));
}

std::unique_ptr<policy::Chain> Session::make_chain() const {
  return runtime_->policies->make_chain({host_.loop(), config_.spool.directory});
}

void Session::on_verdict_timer(uv_timer_t* t) { static_cast<Session*>(t->data)->profile_deadlines(); }

void Session::on_verdict(policy::Verdict verdict) {
  if (state_ != State::Verdict || keeping_) return;
  if (!verdict.passed()) {
    // The downstream has the body but not the dot: closing it now aborts its transaction, so it
    // queues nothing (invariant 2). The next MAIL opens a fresh connection.
    abort_downstream();
    if (verdict.action == policy::Action::FailKeep) {
      keep_message(std::move(verdict), [this](policy::Verdict v) { refuse_message(v); });
      return;
    }
    refuse_message(verdict);
    return;
  }
  if (!link_.connected() || !client_) {
    fail_session(replies::kDownstreamLost, "downstream gone before the dot");
    return;
  }
  if (!verdict.edit.empty()) {
    start_replay(verdict.edit);
    return;
  }
  await_dot_reply();
  data_out_ += ".\r\n";  // the body's last piece, held back by feed_data(), with the dot
  link_.send_dot(data_out_);
  data_out_.clear();
}

void Session::refuse_message(const policy::Verdict& verdict) {
  policy::Outcome outcome = policy::outcome_of(verdict.reply);
  if (!verdict.reason.empty())
    log::info("message refused", {{"client", peer_}, {"reply", verdict.reply.code}, {"reason", verdict.reason}});
  enter_state(State::Command);
  queue_local(verdict.reply);
  finish_transaction(outcome, verdict.reply);
  pump();
}

// fail_keep: the message goes to the quarantine before the client hears the refusal. If it cannot
// be kept (full disk, over max_bytes, directory missing), the client gets 451 4.3.0 instead of
// the 5xx: it keeps the message and retries, so a message we promised to keep is never lost.
// The files are written on the thread pool (QuarantineWrite): fsync must not stall the worker's
// other sessions. The session stays in Verdict meanwhile, its client waiting for the reply.
// Without a configured quarantine, FailKeep is a plain Fail (logged, so the admin notices).
void Session::keep_message(policy::Verdict verdict, std::function<void(policy::Verdict)> then,
                           std::vector<std::string> recipients) {
  if (!config_.quarantine.enabled) {
    log::warn("fail_keep without a quarantine directory: message refused, not kept",
              {{"client", peer_}, {"reason", verdict.reason}});
    then(std::move(verdict));
    return;
  }
  quarantine::Record record;
  record.id = quarantine::Quarantine::make_id();
  record.client = client_address();  // the forwarded client's, when XFORWARD named one
  record.helo = client_helo();
  record.sender = tx_.mail_from;
  record.recipients = recipients.empty() ? tx_.recipients : std::move(recipients);
  record.size = data_stream_.message_size();
  record.reply = verdict.reply.serialize();
  while (!record.reply.empty() && (record.reply.back() == '\n' || record.reply.back() == '\r')) record.reply.pop_back();
  record.reason = verdict.reason;
  std::string id = record.id;
  keeping_ = QuarantineWrite::start(
      host_.loop(), quarantine::Quarantine(config_.quarantine.directory, config_.quarantine.max_bytes),
      std::move(record), spool_,
      [this, id, verdict = std::move(verdict), then = std::move(then)](bool ok, const std::string& error) mutable {
        keeping_ = nullptr;
        if (ok) {
          log::info("message quarantined", {{"client", peer_}, {"id", id}, {"reason", verdict.reason}});
        } else {
          log::error("quarantine failed: message tempfailed instead", {{"client", peer_}, {"id", id}, {"error", error}});
          verdict = policy::Verdict{policy::Action::Fail, make_reply(replies::kQuarantineFailed),
                                    "quarantine failed: " + error + " (was: " + verdict.reason + ")"};
        }
        if (state_ == State::Closing) return;  // closing already: nobody to tell
        then(std::move(verdict));
      });
}

// ---- transaction bookkeeping -------------------------------------------------------------------

policy::Envelope Session::envelope() const {
  policy::Envelope env;
  env.client_address = client_address();  // the forwarded client's, when XFORWARD named one
  env.helo = client_helo();
  env.mail_from = tx_.mail_from;
  env.mail_params = tx_.mail_params;
  env.recipients = tx_.recipients;
  env.queue_id = tx_.queue_id;
  return env;
}

void Session::reset_transaction() {
  tx_ = Transaction{};
  ++tx_generation_;
  deadline_passed_ = false;
  replay_ = Replay{};
  judgement_ = Judgement{};  // no run is in flight here: every one answered or was abandoned
  data_stream_.reset();
  if (spool_.use_count() > 1) {
    // A verdict run still holds this message (required policies after an abandon): it keeps it,
    // and the session starts the next one in a spool of its own.
    spool_ = std::make_shared<spool::Spool>(config_.spool.memory_threshold, config_.spool.directory);
  } else {
    spool_->reset();
  }
  // An idle session should hold no body-sized buffers (5,000 idle sessions, bounded RSS).
  data_out_.clear();  // a held last piece of a refused message goes nowhere
  if (data_out_.capacity() > 4096) std::string().swap(data_out_);
}

void Session::emit_deferred_log() {
  if (!deferred_log_) return;
  TransactionRecord record = std::move(*deferred_log_);
  deferred_log_.reset();
  write_transaction_log(record);
}

void Session::write_transaction_log(const TransactionRecord& record) const {
  if (!log::enabled(spdlog::level::info)) return;
  // Written in place (log/line.h), keys in the order the line always had (sorted, as a json
  // object's std::map gave them): the line is per message and on the loop.
  log::Line line = log::start_line(spdlog::level::info, "transaction");
  line.str("client", record.client).num("duration_ms", record.duration_ms).str("from", record.from).str("helo", record.helo);
  line.str("outcome", record.outcome);
  // An array of objects, each with its keys sorted as well.
  std::string& policies = line.json("policies");
  policies += '[';
  for (const auto& [r, profile] : record.policies) {
    policies += policies.back() == '[' ? "{" : ",{";
    if (!r.detail.empty()) {
      policies += "\"detail\":";
      log::append_json_string(policies, r.detail);
      policies += ',';
    }
    if (!r.error.empty()) {
      policies += "\"error\":";
      log::append_json_string(policies, r.error);
      policies += ',';
    }
    policies += "\"ms\":";
    log::append_json_double(policies, std::round(r.ms * 100) / 100);
    policies += ",\"name\":";
    log::append_json_string(policies, r.name);
    policies += ",\"outcome\":";
    log::append_json_string(policies, r.outcome);
    if (!profile.empty()) {
      policies += ",\"profile\":";
      log::append_json_string(policies, profile);
    }
    if (!r.recipient.empty()) {
      policies += ",\"rcpt\":";
      log::append_json_string(policies, r.recipient);
    }
    policies += '}';
  }
  if (record.deadline_passed) {
    policies += policies.back() == '[' ? "{" : ",{";
    policies += "\"name\":\"*\",\"outcome\":\"deadline\"}";
  }
  policies += ']';
  if (!proxied_by_.empty()) line.str("proxy", proxied_by_);  // the balancer that named `client`
  line.str("queue_id", record.queue_id);
  std::string& rcpts = line.json("rcpts");
  rcpts += '[';
  std::string item;
  for (const auto& [address, code] : record.rcpts) {
    if (rcpts.back() != '[') rcpts += ',';
    item.assign(address).append(":").append(std::to_string(code));
    log::append_json_string(rcpts, item);
  }
  rcpts += ']';
  line.str("reply", record.reply).num("size", record.size);
  if (!record.tls.empty()) line.str("tls", record.tls);
  log::write(spdlog::level::info, line);
}

void Session::finish_transaction(policy::Outcome outcome, const smtp::Reply& reply, bool log_later) {
  static constexpr metrics::TxOutcome kMap[] = {metrics::TxOutcome::Accepted, metrics::TxOutcome::Rejected,
                                                metrics::TxOutcome::Tempfailed, metrics::TxOutcome::Aborted};
  static constexpr const char* kNames[] = {"accepted", "rejected", "tempfailed", "aborted"};
  int o = static_cast<int>(outcome);
  counters_.add(counters_.transactions[static_cast<int>(kMap[o])]);
  if (chain_) chain_->finished(envelope(), outcome);
  emit_deferred_log();  // an earlier transaction's line first: the log stays in order
  TransactionRecord record;
  if (tx_.prdr && tx_.prdr_codes.size() == tx_.recipients.size()) {
    // PRDR: what each recipient heard after the dot (its RCPT was accepted, or it would not be here)
    for (std::size_t i = 0; i < tx_.recipients.size(); ++i) record.rcpts.emplace_back(tx_.recipients[i], tx_.prdr_codes[i]);
    for (auto& [address, code] : tx_.recipient_replies)
      if (code >= 300) record.rcpts.emplace_back(std::move(address), code);
  } else {
    record.rcpts = std::move(tx_.recipient_replies);
  }
  record.reply = std::to_string(reply.code);
  if (!reply.lines.empty()) record.reply.append(" ").append(reply.lines.front());
  record.policies = std::move(judgement_.results);
  // MAIL/RCPT answers that name an outcome (greylisting, per recipient) come first.
  if (chain_ && !chain_->envelope_results().empty()) {
    std::vector<PolicyLogEntry> all;
    for (const auto& r : chain_->envelope_results()) all.push_back({r, ""});
    for (auto& e : record.policies) all.push_back(std::move(e));
    record.policies = std::move(all);
  }
  record.deadline_passed = deadline_passed_;
  record.queue_id = std::move(tx_.queue_id);
  record.client = forwarded_.active() && client_address().empty() ? "unknown" : client_address();
  record.helo = client_helo();
  record.from = std::move(tx_.mail_from);
  record.size = data_stream_.message_size();
  record.outcome = kNames[o];
  record.tls = tls_summary();
  record.duration_ms = tx_.started_ms ? uv_now(host_.loop()) - tx_.started_ms : 0;
  if (log_later)
    deferred_log_ = std::move(record);
  else
    write_transaction_log(record);
  reset_transaction();
  forwarded_.reset();  // XFORWARD_README: the attributes last until the transaction's end
}

}  // namespace dotgate::proxy
