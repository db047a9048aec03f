// proxy/session_replay.cc — sending a judged message again to a fresh downstream transaction.
//
// Why: the body streams to the downstream while it arrives, so when a passing verdict asks for
// header edits (rspamd's X-Spam-*, a rewritten Subject) the MTA already holds the body without
// them. The first transaction is aborted (closed before its dot: it queues nothing), a fresh
// connection gets the EHLO, the same MAIL and accepted RCPTs and DATA, then the edited message
// and the dot; the client's reply to its dot is the reply to this one. Anything the MTA refuses
// on the way, or a failed connection, tempfails the message: the client keeps it and retries,
// nothing is delivered to only some of the recipients it was promised to.
// The edited message is held in memory during the replay (bounded by smtp.max_message_size).
#include "lib/log/log.h"
#include "lib/smtp/header_edit.h"
#include "proxy/session.h"

namespace dotgate::proxy {

void Session::start_replay(const policy::MessageEdit& edit, const std::vector<std::size_t>& only) {
  abort_downstream();
  await_dot_reply();

  replay_ = Replay{};
  replay_.active = true;
  replay_.commands.push_back(tx_.mail_line + "\r\n");
  if (only.empty()) {
    for (const auto& line : tx_.rcpt_lines) replay_.commands.push_back(line + "\r\n");
  } else {
    for (std::size_t i : only) replay_.commands.push_back(tx_.rcpt_lines[i] + "\r\n");
  }
  replay_.commands.push_back("DATA\r\n");
  replay_.message = smtp::edit_header(spool_->read_all(), edit.add_headers, edit.remove_headers);
  replay_.message += ".\r\n";
  data_out_.clear();  // the held last piece is inside the spool's copy
  log::info("replaying message to a fresh transaction",
            {{"client", peer_}, {"queue_id", tx_.queue_id},
             {"recipients", only.empty() ? tx_.recipients.size() : only.size()},
             {"headers_added", edit.add_headers.size()}, {"headers_removed", edit.remove_headers.size()}});
  connect_downstream(!helo_name_.empty());
}

void Session::send_replay_commands() {
  if (replay_.sent == 0 && replay_.identity_lines == 0 && forwarded_.active() && link_.capabilities().xforward &&
      !link_.identity_sent()) {
    // The forwarded client for the fresh connection's MTA too, as before the first MAIL.
    auto lines = smtp::build_xforward(*forwarded_.attributes(), link_.capabilities().xforward_attributes);
    for (auto& line : lines) line += "\r\n";
    replay_.commands.insert(replay_.commands.begin(), lines.begin(), lines.end());
    replay_.identity_lines = lines.size();
  }
  // With PIPELINING all of them at once (RFC 2920: DATA may end the group); else one at a time.
  while (replay_.sent < replay_.commands.size()) {
    link_.send_command(replay_.commands[replay_.sent++]);
    if (!link_.pipelining()) break;
  }
}

void Session::on_replay_reply(smtp::Reply reply) {
  std::size_t index = replay_.answered++;
  bool is_data = index + 1 == replay_.commands.size();
  if (index < replay_.identity_lines) {
    // XFORWARD: the MTA's log, not the message, depends on it (identity_reply).
    if (reply.klass() != 2) log::warn("downstream refused XFORWARD", {{"client", peer_}, {"code", reply.code}});
    if (!link_.pipelining() && replay_.sent < replay_.commands.size()) send_replay_commands();
    return;
  }
  index -= replay_.identity_lines;
  bool ok = is_data ? reply.code == 354 : reply.klass() == 2;
  if (!ok) {
    std::string what = index == 0 ? "MAIL" : is_data ? "DATA" : "RCPT";
    replay_failed(what + " refused with " + std::to_string(reply.code));
    return;
  }
  if (!is_data) {
    if (!link_.pipelining() && replay_.sent < replay_.commands.size()) send_replay_commands();
    return;
  }
  // 354: the message and its dot. The dot's reply is the client's, through the slot that waits.
  replay_.active = false;
  link_.send_dot(replay_.message);
  std::string().swap(replay_.message);
}

void Session::replay_failed(const std::string& why) {
  counters_.add(counters_.downstream_errors[static_cast<int>(metrics::DownstreamError::Protocol)]);
  log::warn("replay failed: message tempfailed", {{"client", peer_}, {"queue_id", tx_.queue_id}, {"error", why}});
  abort_downstream();  // before any dot: nothing delivered
  replay_ = Replay{};
  for (auto& p : pending_) {
    if (p.is_dot && !p.ready) {
      p.ready = true;
      p.reply = make_reply(replies::kReplayFailed);
      prdr_wrap(p);  // PRDR: every recipient hears the 4xx; nothing was half-delivered
      finish_transaction(policy::Outcome::Tempfailed, p.reply);
      break;
    }
  }
  enter_state(State::Command);
  flush_replies();
  if (state_ == State::Closing) return;
  if (shut_down_after_dot_) {
    fail_session(replies::kShuttingDown, "shutting down");  // the drain waited for this reply
    return;
  }
  pump();
}

}  // namespace dotgate::proxy
