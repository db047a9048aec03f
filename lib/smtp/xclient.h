// lib/smtp/xclient.h — the client's identity on the wire: xtext, XCLIENT and XFORWARD.
//
// Postfix's XCLIENT_README and XFORWARD_README. XCLIENT tells the MTA who the real client is, for
// its access rules, RBL checks and logs (the inline appliance, and behind a balancer); XFORWARD
// tells it only for logging, one transaction at a time (dotgate as a Postfix
// smtpd_proxy_filter, forwarding what the Postfix in front told it). Attribute values are xtext
// (RFC 3461 section 4, the encoding Postfix uses since 2.3).
//
// Who calls it: the session, which sends the commands build_xclient/build_xforward return on a
// fresh downstream connection (after its EHLO, whose reply said which attributes the MTA takes:
// EhloCapabilities::xclient_attributes / xforward_attributes), and reads a client's XFORWARD with
// parse_xforward. Everything here is pure; nothing is owned past a call.
//
// What the MTA answers: 220 to each XCLIENT (Postfix resets the session to the greeting, so an
// EHLO must follow before MAIL), 250 to each XFORWARD; 501/550/421 otherwise.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::smtp {

// RFC 3461 section 4: '+', '=' and every byte outside '!'..'~' become "+XX" (upper-case hex).
std::string xtext_encode(std::string_view text);
// The reverse; nullopt when a '+' is not followed by two hex digits (either case: Postfix's
// xtext_unquote accepts both) or a byte is outside '!'..'~'.
std::optional<std::string> xtext_decode(std::string_view xtext);

// The values Postfix's READMEs name for "not known": a lookup that failed for good or for now.
inline constexpr std::string_view kUnavailable = "[UNAVAILABLE]";
inline constexpr std::string_view kTempUnavailable = "[TEMPUNAVAIL]";

// Who the client is, attribute by attribute. nullopt: not known here, not sent (the MTA keeps
// what it has). A value may be kUnavailable or kTempUnavailable (sent as such).
struct ClientIdentity {
  std::optional<std::string> name;       // NAME: the client's verified hostname
  std::optional<std::string> addr;       // ADDR: an IP literal, "192.0.2.1" or "2001:db8::1" (no "IPV6:")
  std::optional<std::string> port;       // PORT: decimal
  std::optional<std::string> proto;      // PROTO: "SMTP" or "ESMTP" (XFORWARD: any protocol name)
  std::optional<std::string> helo;       // HELO: the client's HELO/EHLO argument
  std::optional<std::string> login;      // LOGIN: SASL login name (XCLIENT only)
  std::optional<std::string> dest_addr;  // DESTADDR: the address the client connected to (XCLIENT only)
  std::optional<std::string> dest_port;  // DESTPORT (XCLIENT only)
  std::optional<std::string> ident;      // IDENT: the up-stream MTA's queue id (XFORWARD only)
  std::optional<std::string> source;     // SOURCE: "LOCAL" or "REMOTE" (XFORWARD only)
  bool operator==(const ClientIdentity&) const = default;
};

// Copies every attribute `update` sets into `into` (XFORWARD attributes accumulate over several
// commands of one transaction).
void merge_identity(const ClientIdentity& update, ClientIdentity& into);

// The XCLIENT command lines (without CRLF) that send `who` to an MTA whose EHLO announced
// `announced` (attribute names, any case). Only announced attributes that `who` knows are sent,
// in the order Postfix's README advises: HELO, PROTO, LOGIN, DESTADDR, DESTPORT, PORT, then NAME
// and ADDR last (once ADDR is sent the MTA judges the next XCLIENT by the new address, and
// usually refuses it). A line that would pass 512 octets with its CRLF is split into several
// commands, as Postfix does. A value the MTA would refuse with 501, failing the whole command, is
// sent as [UNAVAILABLE] instead: an xtext form over 255 characters (Postfix's limit), an ADDR or
// DESTADDR that is no IP literal, a PORT that is no port number, a PROTO other than SMTP/ESMTP,
// a NAME that is no hostname. Empty when nothing is to be sent.
std::vector<std::string> build_xclient(const ClientIdentity& who, const std::vector<std::string>& announced);

// The same for XFORWARD, in Postfix's smtpd_proxy order: NAME, ADDR, PORT, HELO, IDENT, PROTO,
// SOURCE. Values over 255 characters in xtext, and an ADDR or PORT the MTA would refuse, go as
// [UNAVAILABLE].
std::vector<std::string> build_xforward(const ClientIdentity& who, const std::vector<std::string>& announced);

struct XforwardParse {
  ClientIdentity attributes;  // the ones this command sets; values decoded; "IPV6:" removed
  // Non-empty when the command is refused: the whole reply, "501 5.5.4 ...". Nothing is applied.
  std::string error;
  bool ok() const { return error.empty(); }
};

// Reads the arguments of a received "XFORWARD name=value ..." (the text after the verb).
// Names are case-insensitive; each of NAME ADDR PORT PROTO HELO IDENT SOURCE. Values are xtext,
// at most 255 characters as received; a value that is not valid xtext is taken as it came (Note 4:
// Postfix before 2.3 sent raw values). [UNAVAILABLE] and [TEMPUNAVAIL], in any case, become
// kUnavailable / kTempUnavailable. After decoding, control characters, spaces and non-ASCII
// bytes are replaced by '?' (the README: such values must not reach logs or headers raw). Refused:
// no attribute, an unknown name, a missing '=' or value, an ADDR that is no IP literal (with or
// without "IPV6:"), a PORT that is no number in 0..65535, a PROTO over 64 characters, a SOURCE
// other than LOCAL/REMOTE.
XforwardParse parse_xforward(std::string_view arguments);

}  // namespace dotgate::smtp
