// policies/greylist_key.h — what greylisting remembers things by: the client's network, the
// normalised sender and recipient, and the hash of a normalised message. Pure functions, no I/O.
//
// Called by policies/greylist.cc (and the unit tests). What each key is made of, and why:
//   network      the client address masked to ipv4_prefix / ipv6_prefix ("192.0.2.0/24",
//                "2001:db8:1:2::/64"): a sender's outbound pool retries from another address of
//                the same network, and must still match. An IPv4-mapped IPv6 address
//                (::ffff:192.0.2.1, a dual-stack listener) counts as IPv4. Anything that is not
//                an IP literal is kept as it is.
//   sender       lower-cased; the null sender is "<>"; a BATV tag ("prvs=1234abcd=user@") and a
//                "+detail" go; every run of digits in the local part becomes '#': bounce and VERP
//                addresses carry a per-message number that changes on every retry
//                ("bounce-12345-user=example.com@list.example").
//   recipient    lower-cased.
//   triplet key  "t:" + the first 128 bits of SHA-256(network, sender, recipient), hex: bounded
//                size whatever the addresses, and no address in clear in a shared Redis.
//   message key  "m:" + the same over (network, sender, the sorted recipients, message digest).
//   message digest  SHA-256 of the parts of the message that a sender rebuilding it on retry
//                keeps: the From, To, Cc and Subject fields (RFC 2047-decoded, whitespace runs as
//                one space) and the decoded text of every text/* part (transfer encoding and
//                charset undone, HTML reduced to its words, every whitespace removed and digit
//                runs as '#'). Left out, because a rebuilt message changes them: Message-ID, Date,
//                Received, DKIM-Signature and every other field, MIME boundaries and the
//                Content-* structure, the choice of base64 or quoted-printable, line wrapping.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dotgate::policy {

// The address alone, from the Envelope's client_address ("192.0.2.1:4711", "[2001:db8::1]:4711"
// or a bare literal).
std::string greylist_client_ip(std::string_view client_address);
// `client_address`: as greylist_client_ip takes it.
std::string greylist_network(std::string_view client_address, int ipv4_prefix, int ipv6_prefix);
std::string greylist_sender(std::string_view mail_from);
std::string greylist_recipient(std::string_view rcpt_to);
std::string greylist_triplet_key(std::string_view network, std::string_view sender, std::string_view recipient);
// `message`: the message as received (unstuffed, CRLF lines).
std::string greylist_message_digest(std::string_view message);
std::string greylist_message_key(std::string_view network, std::string_view sender, std::vector<std::string> recipients,
                                 std::string_view digest);

}  // namespace dotgate::policy
