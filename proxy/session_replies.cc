// proxy/session_replies.cc — the one way out to the client: every reply, local or relayed, waits
// in pending_ in command order (RFC 2920) and leaves through flush_replies()/send_reply(),
// counted by class. Local refusals count towards smtp.max_errors.
#include "lib/log/log.h"
#include "proxy/session.h"

namespace dotgate::proxy {

smtp::Reply Session::make_reply(const ReplySpec& spec) const {
  std::string text(spec.text);
  if (auto at = text.find("%h"); at != std::string::npos) text.replace(at, 2, config_.smtp.hostname);
  return smtp::Reply::make(spec.code, spec.enhanced, text);
}

void Session::queue_local(const ReplySpec& spec, bool close_after) { queue_local(make_reply(spec), close_after); }

void Session::queue_local(const smtp::Reply& reply, bool close_after) {
  PendingReply slot;
  slot.ready = true;
  slot.reply = reply;
  slot.close_after = close_after;
  pending_.push_back(std::move(slot));
  flush_replies();
}

void Session::flush_replies() {
  while (!pending_.empty() && pending_.front().ready && state_ != State::Closing) {
    PendingReply slot = std::move(pending_.front());
    pending_.pop_front();
    if (slot.internal) continue;  // the MTA's reply to dotgate's own XFORWARD
    for (const auto& r : slot.preface) send_reply(r);
    send_reply(slot.reply);
    if (slot.close_after) {
      if (quit_) retire_downstream();
      close_all();
      return;
    }
  }
}

void Session::send_reply(const smtp::Reply& reply) {
  if (!client_) return;
  int k = reply.code / 100;
  if (k >= 0 && k < 6) counters_.add(counters_.replies_by_class[k]);
  std::string wire = reply.serialize();
  if (log::enabled(spdlog::level::debug))
    log::debug("reply", {{"client", peer_}, {"code", reply.code}, {"text", reply.lines.empty() ? "" : reply.lines[0]}});
  client_->write(wire);
}

void Session::local_error(const smtp::Reply& reply) {
  // As Postfix's smtpd_hard_error_limit: the error past the limit is answered with 421 instead.
  if (++errors_ > config_.smtp.max_errors) {
    fail_session(replies::kTooManyErrors, "too many errors");
    return;
  }
  queue_local(reply);
}

}  // namespace dotgate::proxy
