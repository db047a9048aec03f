// proxy/replies.h — every reply dotgate makes itself, in one table.
//
// Postfix's cleanup_strerror idea: one place says what each condition answers, so the README, the
// tests and the code agree. `%h` in a text is replaced by the configured smtp.hostname.
// Greetings and replies that close the session use 421 (temporary) or 554 (permanent) only.
#pragma once

#include <string_view>

namespace dotgate::proxy {

struct ReplySpec {
  int code;
  std::string_view enhanced;
  std::string_view text;
};

namespace replies {
// session start and end
inline constexpr ReplySpec kEarlyTalker{554, "5.5.1", "%h Protocol error: command sent before the greeting"};
inline constexpr ReplySpec kTooManyConnections{421, "4.7.0", "%h Too many connections, try again later"};
inline constexpr ReplySpec kDownstreamUnavailable{421, "4.4.0", "%h Service temporarily unavailable"};
inline constexpr ReplySpec kDownstreamLost{421, "4.4.2", "%h Connection to the mail server lost"};
inline constexpr ReplySpec kDownstreamProtocol{421, "4.4.2", "%h Mail server protocol error"};
inline constexpr ReplySpec kDownstreamTimeout{421, "4.4.2", "%h Mail server timed out"};
inline constexpr ReplySpec kClientTimeout{421, "4.4.2", "%h Timeout exceeded, closing connection"};
inline constexpr ReplySpec kTooManyErrors{421, "4.7.0", "%h Too many errors, closing connection"};
inline constexpr ReplySpec kTooManyCommands{421, "4.7.0", "%h Too many commands, closing connection"};
inline constexpr ReplySpec kShuttingDown{421, "4.3.2", "%h Service shutting down, try again later"};
inline constexpr ReplySpec kQuitLocal{221, "2.0.0", "%h Bye"};
// commands
inline constexpr ReplySpec kLineTooLong{500, "5.5.2", "Line too long"};
// STARTTLS (RFC 3207)
inline constexpr ReplySpec kTlsReady{220, "2.0.0", "Ready to start TLS"};
inline constexpr ReplySpec kTlsRequired{530, "5.7.0", "Must issue a STARTTLS command first"};
inline constexpr ReplySpec kTlsAlreadyActive{503, "5.5.1", "TLS already active"};
inline constexpr ReplySpec kTlsNotOffered{502, "5.5.1", "STARTTLS not offered"};
inline constexpr ReplySpec kTlsInTransaction{503, "5.5.1", "STARTTLS not allowed inside a mail transaction"};
// RFC 3207 4.2: after TLS starts, the client's earlier EHLO is forgotten; it must say it again.
inline constexpr ReplySpec kHelloAfterTls{503, "5.5.1", "Send EHLO first (after STARTTLS)"};
inline constexpr ReplySpec kSyntaxError{501, "5.5.4", "Syntax error in parameters or arguments"};
inline constexpr ReplySpec kVrfy252{252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"};
inline constexpr ReplySpec kVrfyDisabled{502, "5.5.1", "VRFY command is disabled"};
inline constexpr ReplySpec kExpnDisabled{502, "5.5.1", "EXPN command is disabled"};
inline constexpr ReplySpec kNotImplemented{502, "5.5.1", "Command not implemented"};
// RFC 5321 3.1: after a 554 greeting, every command but QUIT gets 503.
inline constexpr ReplySpec kRefusedAtGreeting{503, "5.5.1", "Bad sequence of commands: service refused at the greeting, only QUIT"};
inline constexpr ReplySpec kOkLocal{250, "2.0.0", "OK"};
inline constexpr ReplySpec kHelpLocal{214, "2.0.0", "See RFC 5321"};
inline constexpr ReplySpec kTooManyRecipients{452, "4.5.3", "Too many recipients"};
inline constexpr ReplySpec kMessageTooBig{552, "5.3.4", "Message size exceeds fixed limit"};
// profile_lookup with on_error "tempfail": the service gave no usable answer for this RCPT.
// 451 4.3.0, not 4.4.3: X.4.3 (RFC 3463) is "directory server failure" on the way to the
// destination (a routing problem, in bounces usually DNS); here our own mail system cannot decide
// how to handle the recipient, which is X.3.0 "other or undefined mail system status" with
// RFC 5321's 451 "local error in processing" -- what Postfix answers for a failed table lookup
// ("451 4.3.0 <rcpt>: Temporary lookup failure").
inline constexpr ReplySpec kProfileLookupFailed{451, "4.3.0", "Recipient profile lookup failed, try again later"};
// the dot
inline constexpr ReplySpec kDataLineTooLong{550, "5.6.0", "Message has a line longer than the limit (RFC 5321 4.5.3.1.6)"};
inline constexpr ReplySpec kDataBareLineEnding{550, "5.6.0", "Message contains a bare CR or LF (RFC 5321 2.3.8)"};
inline constexpr ReplySpec kDotDownstreamError{451, "4.4.2", "Mail server error at end of data, try again later"};
inline constexpr ReplySpec kInternalError{451, "4.3.0", "Internal error, try again later"};
// verdict.deadline passed with on_deadline "tempfail".
inline constexpr ReplySpec kVerdictDeadline{451, "4.7.0", "Message could not be checked in time, try again later"};
// A message replayed with edited headers could not be handed on again (the MTA refused a command
// it had accepted the first time, or the connection failed): nothing was delivered.
inline constexpr ReplySpec kPrdrSyntax{501, "5.5.4", "Syntax: PRDR takes no value"};
// PRDR (draft-hall-prdr-00): after the dot, before the per-recipient replies.
inline constexpr ReplySpec kPrdrStart{353, "", "Content analysis has started"};
inline constexpr ReplySpec kReplayFailed{451, "4.4.2", "Mail server error, try again later"};
// fail_keep could not keep the message: a tempfail, so the client keeps it (never lost).
inline constexpr ReplySpec kQuarantineFailed{451, "4.3.0", "Message could not be stored, try again later"};
}  // namespace replies

}  // namespace dotgate::proxy
