// proxy/session.h — one client connection and its downstream connection: the SMTP state machine.
//
// Made by a Worker for each accepted connection. What it owns:
//   - the client stream (net::StreamPtr; the session reads and writes plaintext and does not know
//     what carries it), and its events (Stream::Events);
//   - the DownstreamLink (downstream_link.h): the MTA side, one connection at a time, its
//     handshake and its timer; its events come through DownstreamLink::Owner;
//   - two timers of its own (client, verdict deadline), the spool and the policy chain.
// It shares the worker's profile lookup (profile_lookup.h) once it asked it something, its request
// in flight cancelled in close_all(); a fail_keep copy being written (QuarantineWrite) is detached
// when the session goes. Close sequence (close_all): the streams are dropped (they close on their
// own, the client's after its last reply), then the three timers close through close_group_,
// whose callback tells the host and frees the session: nothing is counted by hand.
//
// The flow (DESIGN.md, OpenSMTPD's check -> filter -> proceed):
//   ProxyHeader (proxy_protocol listeners only, session_proxy_header.cc): a peer outside the
//             listener's trusted networks is closed at once; the others must send a whole PROXY
//             header within proxy_protocol_timeout, which names the client (peer_, local_) before
//             anything else happens. A bad header closes the connection with nothing sent or relayed.
//   Greeting: connect downstream, relay its (normalised) greeting; client bytes now are an early talker.
//   Command:  each client line is checked (syntax, limits; local replies), filtered (policy hooks
//             for MAIL/RCPT), then proceeded (relayed downstream). An RCPT first gets its profile
//             (the lookup service when configured, else the rules) and the split's decision. Replies return to the client
//             strictly in command order through one queue, whatever mix of local and downstream
//             replies (RFC 2920). DATA, EHLO, HELO and any command to a downstream without
//             PIPELINING wait for their reply before the next command is taken.
//   Data:     client bytes -> DataStream -> downstream + spool; the final dot is held.
//   Verdict:  the chain's data_end hooks decide. Pass: relay the dot, then the downstream's reply.
//             Fail: the client gets the verdict and the downstream connection is closed before any
//             dot (it queues nothing); the next transaction opens a fresh one (greeting consumed,
//             EHLO replayed).
// Every reply leaves through send_reply() (counted, logged). Anything that breaks the session
// ends in fail_session(): one 421/554 and the close sequence.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <uv.h>

#include "lib/net/close_group.h"
#include "lib/net/lazy_timer.h"
#include "lib/net/stream.h"
#include "lib/net/tcp_connection.h"
#include "lib/smtp/command.h"
#include "lib/smtp/data_stream.h"
#include "lib/smtp/ehlo.h"
#include "lib/smtp/forwarded_client.h"
#include "lib/lookup/profile_answer.h"
#include "lib/metrics/proxy_protocol_metrics.h"
#include "lib/proxyproto/proxy_header.h"
#include "lib/smtp/reply.h"
#include "lib/spool/spool.h"
#include "policies/chain.h"
#include "proxy/downstream_link.h"
#include "proxy/downstream_pool.h"
#include "proxy/replies.h"
#include "proxy/runtime.h"

namespace dotgate::proxy {

class Session;
class DownstreamPool;
class ProfileLookup;
class QuarantineWrite;

// What a session needs from the worker that made it.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual uv_loop_t* loop() = 0;
  virtual net::ReadBuffer* read_buffer() = 0;
  virtual net::Connector& connector() = 0;  // downstream connections
  virtual metrics::WorkerCounters& counters() = 0;
  virtual Shared& shared() = 0;
  virtual DownstreamPool* downstream_pool() = 0;  // pre-greeted connections; QUIT on the way out
  // The worker's profile lookup for sessions under `config` (profile_lookup enabled); null while
  // the worker shuts down.
  virtual std::shared_ptr<ProfileLookup> profile_lookup(const config::Config& config) = 0;
  virtual void session_closed(Session* session) = 0;  // the session is about to free itself
};

class Session final : public net::Stream::Events, public DownstreamLink::Owner {
 public:
  Session(SessionHost& host, std::shared_ptr<const Runtime> runtime);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Accepts from `server` and starts (connects downstream; on a proxy_protocol listener, reads the
  // PROXY header first). On accept failure the session closes. `listener`: the listener that
  // accepted (its TLS mode, its PROXY protocol settings), as opened at start; the worker keeps it
  // for longer than any session lives.
  void start(uv_stream_t* server, const config::Endpoint& listener);
  // Accepts, sends `reply` and closes: for connections over the limit or while draining. On an
  // implicit TLS listener the reply goes over TLS, after the handshake (session_refusal.cc).
  void refuse(uv_stream_t* server, const config::Endpoint& listener, const ReplySpec& reply);
  // Drain deadline reached: 421 4.3.2 and close, whatever the session was doing, except waiting
  // for the reply to a dot already relayed: that reply goes out first (bounded by the link's
  // data_end_timeout), then the 421.
  void shut_down();

  // net::Stream::Events: the client's stream
  void on_connected(net::Stream& c, int status) override;  // TLS: the handshake is done
  void on_data(net::Stream& c, std::string_view data) override;
  void on_end(net::Stream& c, const net::StreamEnd& end) override;
  void on_drained(net::Stream& c) override;

  // DownstreamLink::Owner
  void on_link_greeting(smtp::Reply greeting) override;
  void on_link_ready() override;
  void on_link_reply(smtp::Reply reply) override;
  void on_link_failed(metrics::DownstreamError why, const ReplySpec& spec, const std::string& detail) override;
  void on_link_closed(const net::StreamEnd& end, bool idle) override;
  void on_link_drained() override;

 private:
  // Client input kept while a command waits (for the downstream, a policy, or its reply). Past
  // this, reading stops until the queue moves: a client that floods pipelined commands, or does
  // not read its replies, cannot grow our memory (invariant 5).
  static constexpr std::size_t kMaxClientBuffer = 64 * 1024;
  // Downstream write queue above which the client is not read (a slow MTA slows the client).
  static constexpr std::size_t kMaxDownstreamQueue = 256 * 1024;
  enum class State { ProxyHeader, Greeting, Command, Data, Verdict, DotSent, Closing };

  // One slot per command, in the order received; a reply leaves when it and all before it are known.
  struct PendingReply {
    smtp::Verb verb = smtp::Verb::Unknown;
    bool from_downstream = false;
    bool is_dot = false;
    bool ready = false;
    bool close_after = false;  // QUIT: close once this reply is out
    smtp::Reply reply;
    std::string recipient;  // RCPT: the address, for the envelope
    std::string line;       // RCPT: the command as relayed, for a replay
    std::string profile;    // RCPT: the recipient's profile
    // The transaction the command belonged to (tx_generation_ when it was relayed): a reply that
    // comes back after a pipelined RSET or MAIL started another one must not change that one.
    std::uint64_t generation = 0;
    std::vector<smtp::Reply> preface;  // sent before `reply` (PRDR: 353 and one per recipient)
    // An XFORWARD dotgate sent ahead of a MAIL (forward_identity): its reply is not the client's.
    bool internal = false;
  };

  struct ParkedCommand {
    smtp::Command command;
    bool filtered = false;  // policy hooks done
    bool profiled = false;  // RCPT: profile known and the split decided (it stays)
  };

  // One policy's answer in the transaction's log line.
  struct PolicyLogEntry {
    policy::PolicyResult result;
    std::string profile;  // "" for the default profile
  };

  struct Transaction {
    bool open = false;  // MAIL accepted downstream
    std::string queue_id;   // ours, for logs and verdict services
    std::string mail_line;  // MAIL as relayed, for a replay
    std::vector<std::string> rcpt_lines;  // the accepted RCPTs as relayed, for a replay
    std::vector<std::string> recipient_profiles;  // aligned with `recipients`
    // profile_lookup: each RCPT's profile as resolved at RCPT time (lower-cased address ->
    // profile, "" for none), so that every later profile_of() in this transaction agrees with
    // the split's decision even when the cache entry expires or the service changes its mind.
    std::map<std::string, std::string> resolved_profiles;
    bool prdr = false;                // MAIL ... PRDR: per-recipient replies after the dot
    std::string profile;              // the split: the profile of the recipients forwarded so far
    std::size_t profile_holders = 0;  // recipients of `profile` accepted or in flight
    // PRDR: per accepted recipient, its profile's refusal (nullopt: accepted by its profile).
    std::vector<std::optional<smtp::Reply>> prdr_refusals;
    std::vector<int> prdr_codes;  // PRDR: each accepted recipient's reply after the dot, for the log
    std::string mail_from;
    std::vector<smtp::EsmtpParam> mail_params;
    std::vector<std::string> recipients;  // accepted downstream
    std::vector<std::pair<std::string, int>> recipient_replies;  // every RCPT with its reply code
    std::size_t recipients_in_flight = 0;
    std::uint64_t started_ms = 0;
  };

  // state
  void enter_state(State next);
  static const char* state_name(State s);

  // client side
  void pump();
  bool take_command();  // false: no complete line yet
  bool check(const smtp::Command& cmd);  // false: answered locally
  bool can_take_command() const;
  bool needs_policy(const smtp::Command& cmd) const;
  void run_policy(ParkedCommand& parked);
  void proceed(smtp::Command cmd);
  void feed_data();
  void run_verdict();
  void on_verdict(policy::Verdict verdict);
  void refuse_message(const policy::Verdict& verdict);  // the downstream aborted already
  // FailKeep: the copy is written off the loop; `then` gets the verdict back on the loop, turned
  // into 451 4.3.0 when the copy could not be kept. Nothing runs if the session closed first.
  // `recipients`: whom the copy is for (PRDR: only those that refused with keep); empty: all.
  void keep_message(policy::Verdict verdict, std::function<void(policy::Verdict)> then,
                    std::vector<std::string> recipients = {});
  std::unique_ptr<policy::Chain> make_chain() const;
  void await_dot_reply();  // DotSent, and the slot the client's reply to its dot waits in
  void prepend_trace_header();  // smtp.trace_header, at the downstream's 354
  // profiles, the split and PRDR (session_profiles.cc)
  std::string profile_of(const std::string& address) const;
  std::string rules_profile(const std::string& address) const;  // the config rules alone
  void resolve_recipient(ParkedCommand& parked);  // the profile step of an RCPT (lookup, split)
  void start_lookup(const std::string& address_ref);
  void lookup_answered(const std::string& address, const lookup::ProfileAnswer& answer, bool from_cache);
  void cancel_lookup();
  std::string client_ip() const;
  bool never_defer() const;
  bool defer_recipient(const smtp::Command& cmd);  // true: answered with the split's deferral
  void recipient_dropped(const std::string& profile);  // a forwarded RCPT was refused after all
  std::string relayed_mail_line(const smtp::Command& cmd) const;  // PRDR stripped
  const config::VerdictConfig& verdict_config_for(const std::string& profile) const;
  void start_judgement();        // one chain run per recipient profile, all at once
  void check_judgement();        // done when the verdict is certain (or every profile answered)
  void profile_deadlines();      // the timer: profiles past their deadline get its outcome
  void abandon_profile_run(std::size_t index);
  void judgement_done();
  void prdr_verdicts();
  void prdr_finish(const std::optional<policy::Verdict>& kept);  // after the copy, if any
  policy::Verdict& prdr_verdict_of(const std::string& profile);
  void prdr_wrap(PendingReply& slot);  // slot.reply: the message's outcome downstream
  static void on_verdict_timer(uv_timer_t* t);
  void verdict_deadline();
  // The message again, to a fresh downstream transaction, with the verdict's header edits.
  // `only`: the indices of tx_.recipients to replay to (PRDR); empty: all of them.
  void start_replay(const policy::MessageEdit& edit, const std::vector<std::size_t>& only = {});
  void send_replay_commands();
  void on_replay_reply(smtp::Reply reply);
  void replay_failed(const std::string& why);
  // Client EOF: true when the client has asked for everything it wants (a QUIT is buffered, or
  // its dot is already relayed): it half-closed and waits for its replies (Exim does).
  bool client_done_talking() const;
  void close_if_client_finished();

  // replies
  void queue_local(const smtp::Reply& reply, bool close_after = false);
  void queue_local(const ReplySpec& spec, bool close_after = false);
  void flush_replies();
  void send_reply(const smtp::Reply& reply);
  smtp::Reply make_reply(const ReplySpec& spec) const;
  void local_error(const smtp::Reply& reply);  // a client error: counted against max_errors

  // downstream side (session_downstream.cc)
  // A downstream connection for what comes next. `replay`: the client said HELO/EHLO before, and
  // the MTA must hear it again on the new connection.
  void connect_downstream(bool replay);
  smtp::ClientIdentity client_identity() const;  // for XCLIENT
  // The client's identity from XFORWARD (session_identity.cc). The connection's peer may send it
  // when it is in smtp.xforward_from; then, until the transaction ends, the forwarded client is
  // the client for the policies, the log line and the downstream.
  bool xforward_trusted() const;
  void answer_xforward(const smtp::Command& cmd);
  std::string client_address() const;  // the Envelope's: forwarded, or peer_
  std::string client_helo() const;      // the Envelope's: forwarded, or helo_name_
  std::string peer_ip() const;          // the connection's peer, address alone
  // MAIL with a forwarded client: XFORWARD ahead of it (an MTA that announces XFORWARD), or a
  // fresh connection whose XCLIENT names it (downstream.xclient). True: `cmd` is parked again
  // behind that, and goes when its turn comes.
  bool forward_identity(smtp::Command& cmd);
  void identity_reply(PendingReply& slot, const smtp::Reply& reply);
  bool retire_downstream();  // QUIT: the pool says QUIT to the MTA and closes, or keeps it (max_sessions)
  void answer_from_speculation(smtp::Command cmd, smtp::Reply reply);
  void on_command_reply(PendingReply& slot, smtp::Reply reply);
  void abort_downstream();
  void downstream_failed(metrics::DownstreamError why, const ReplySpec& spec, const std::string& detail);

  // TLS with the client (session_tls.cc)
  bool check_starttls();  // false: answered locally (the parser refused arguments already)
  void start_tls();  // the parked STARTTLS, once every earlier reply is out
  bool tls_active() const;
  std::string tls_summary() const;  // "TLSv1.3 TLS_AES_256_GCM_SHA384", "" without TLS
  // refuse() on an implicit TLS listener (session_refusal.cc): the handshake, bounded, then
  // refusal_ over TLS and the close. `already_read`: ciphertext read along with a PROXY header.
  void refuse_over_tls(std::string_view already_read = {});
  void end_tls_refusal();  // from close_all(): the worker's count of refusals in handshake

  // the PROXY protocol header (session_proxy_header.cc)
  void start_proxy_header();  // trusted peer: wait for the header; anyone else: closed
  void on_proxy_header_data(std::string_view data);
  void refuse_proxy_header(metrics::ProxyHeaderRefusal why, std::string_view detail);
  // The session proper begins: TLS on an implicit TLS listener, the downstream's greeting awaited.
  // `already_read`: client bytes read with the PROXY header, handled as just received.
  void greet(std::string_view already_read = {});

  // timers
  void arm_client_timer();
  static void on_client_timer(uv_timer_t* t);

  // transaction and session end
  policy::Envelope envelope() const;
  // A transaction's log line as plain fields, moved out of the transaction: its JSON is built
  // when the line is written, after the client's reply, and not at all when info is off.
  struct TransactionRecord {
    std::string queue_id, client, helo, from, reply;
    std::vector<std::pair<std::string, int>> rcpts;  // address, reply code
    std::vector<PolicyLogEntry> policies;
    bool deadline_passed = false;
    std::uint64_t size = 0, duration_ms = 0;
    const char* outcome = "";
    std::string tls;  // "TLSv1.3 TLS_AES_256_GCM_SHA384" with the client; "" without TLS
  };
  // log_later: the transaction's log line waits in deferred_log_ until emit_deferred_log(), so
  // the client's reply to its dot is written first (the log line is not on its critical path).
  void finish_transaction(policy::Outcome outcome, const smtp::Reply& reply, bool log_later = false);
  void emit_deferred_log();
  void write_transaction_log(const TransactionRecord& record) const;
  void reset_transaction();
  void fail_session(const ReplySpec& spec, const std::string& reason);
  void close_all();

  SessionHost& host_;
  std::shared_ptr<const Runtime> runtime_;
  const config::Config& config_;
  metrics::WorkerCounters& counters_;

  net::StreamPtr client_;
  DownstreamLink link_;
  net::LazyTimer client_timer_;  // re-armed on nearly every line: see lazy_timer.h
  uv_timer_t verdict_timer_{};   // the overall data_end deadline
  net::CloseGroup close_group_;  // the timers above and the link's: closed last, then `delete this`
  bool counted_open_ = false;

  State state_ = State::Greeting;
  bool barrier_ = false;  // a command that must be answered before the next one

  std::string client_in_;
  std::size_t client_pos_ = 0;  // bytes of client_in_ already consumed
  bool client_paused_ = false;  // reading stopped for backpressure
  smtp::CommandLineReader line_reader_;
  smtp::DataStream data_stream_;
  std::string data_out_;  // DataStream output of one read, before it goes downstream and to the spool
  std::shared_ptr<spool::Spool> spool_;  // shared with a verdict run that may outlive the session
  std::unique_ptr<policy::Chain> chain_;
  bool policy_running_ = false;
  QuarantineWrite* keeping_ = nullptr;          // a fail_keep copy being written; detached at close
  std::optional<TransactionRecord> deferred_log_;  // a transaction line not written yet (log_later)
  // profile_lookup: the worker's lookup (taken on first use) and the request in flight, during
  // which no command is taken (replies stay in order; pipelined commands wait in client_in_).
  std::shared_ptr<ProfileLookup> profile_lookup_;
  std::uint64_t lookup_ticket_ = 0;
  bool lookup_running_ = false;
  std::optional<ParkedCommand> parked_;
  std::deque<PendingReply> pending_;
  bool in_pump_ = false;
  bool pump_again_ = false;
  bool auth_continuation_ = false;  // next client line answers a 334 (AUTH passthrough)
  bool client_authenticated_ = false;  // the MTA answered 235 to the client's AUTH
  bool quit_ = false;
  bool client_ended_ = false;  // EOF from a client that waits for its last replies
  bool shut_down_after_dot_ = false;  // shut_down() came while the dot's reply was owed
  bool deadline_passed_ = false;  // this transaction's verdict came from the deadline
  bool refused_at_greeting_ = false;  // we relayed a 554 greeting: only QUIT from now on
  config::ListenerTls listener_tls_ = config::ListenerTls::Off;
  bool require_tls_ = false;    // the listener's require_tls: 530 to MAIL before STARTTLS
  bool tls_started_ = false;    // STARTTLS answered 220 (or an implicit TLS listener)
  bool hello_after_tls_ = false;  // RFC 3207 4.2: after STARTTLS, what the client said before is forgotten
  const ReplySpec* refusal_ = nullptr;  // refuse() over TLS: the reply it waits to send (a static table's)
  bool counted_tls_refusal_ = false;    // counted in the worker's refusals in handshake

  std::string peer_;   // the client's address, "192.0.2.1:4321" / "[2001:db8::1]:4321"
  std::string local_;  // the address it connected to
  const config::Endpoint* listener_ = nullptr;  // the listener that accepted (start())
  // proxy_protocol listeners: the parser while the header is read (freed once it is complete),
  // then the balancer's own address (the TCP peer) for the logs; peer_ is the client it named.
  std::unique_ptr<proxyproto::ProxyHeaderParser> proxy_header_;
  std::string proxied_by_;
  std::string helo_name_;
  smtp::Verb helo_verb_ = smtp::Verb::Unknown;
  smtp::ForwardedClient forwarded_;  // XFORWARD from a trusted peer, until the transaction ends
  bool identity_forwarded_ = false;   // the parked MAIL went through forward_identity() already
  Transaction tx_;
  std::uint64_t tx_generation_ = 0;  // counts reset_transaction(): which transaction tx_ is
  struct Replay {
    bool active = false;
    std::vector<std::string> commands;  // [XFORWARD...], MAIL, RCPTs, DATA, each with CRLF
    std::size_t identity_lines = 0;     // the XFORWARD commands in front (session_identity.cc)
    std::size_t sent = 0;
    std::size_t answered = 0;
    std::string message;  // the edited message, wire form, with the final ".\r\n"
  } replay_;
  // The data_end judgement: one chain run per recipient profile of the message, all at once,
  // each within its own profile's deadline (one run without profiles).
  struct ProfileRun {
    std::string profile;
    std::unique_ptr<policy::Chain> chain;  // null for the first: it runs on chain_
    std::uint64_t deadline_at = 0;         // uv_now() milliseconds
    bool accept_on_deadline = false;
    bool done = false;
    policy::Verdict verdict;
  };
  struct Judgement {
    std::vector<ProfileRun> runs;
    std::vector<PolicyLogEntry> results;  // per policy asked, for the log line
    bool starting = false;
    bool finished = false;
  } judgement_;
  std::size_t commands_ = 0;
  std::size_t errors_ = 0;
};

}  // namespace dotgate::proxy
