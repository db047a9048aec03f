// policies/greylist_exemptions.h — who greylisting leaves alone: networks, HELO patterns, sender
// domains and recipient profiles, from the policy's "exempt" keys and from exemption list files.
//
// The list file format (deploy/greylist/no-retry.txt is the shipped one): one entry per line,
// `KIND VALUE`, '#' starts a comment, blank lines are ignored:
//   network        192.0.2.0/24 | 2001:db8::/32 | 192.0.2.7      the client address is in it
//   helo           *.example.net                                 the HELO/EHLO name (glob, '*' any run, no case)
//   sender_domain  example.com                                   the sender's domain or a subdomain of it
// parse_exemption_list is pure (text in, entries out) and says "SOURCE:LINE: why" for the first
// bad line. Matching is a linear walk: these lists are tens of entries, not thousands.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lib/config/profiles.h"

namespace dotgate::policy {

struct GreylistExemptions {
  config::ClientMatch clients;              // networks and HELO globs
  std::vector<std::string> sender_domains;  // lower case, no leading '@' or '.'
  std::vector<std::string> profiles;        // recipient profiles never greylisted

  // The rule that exempts this client/sender ("network", "helo", "sender_domain"), or nullptr.
  const char* match(std::string_view client_address, std::string_view helo, std::string_view sender) const;
  bool exempts_profile(std::string_view profile) const;
  std::size_t size() const {
    return clients.networks.size() + clients.helo_globs.size() + sender_domains.size() + profiles.size();
  }
};

// Appends the entries of `text` to `out`. Empty string when every line is valid, else
// "SOURCE:LINE: why" (and `out` may hold the lines before it).
std::string parse_exemption_list(std::string_view text, std::string_view source, GreylistExemptions& out);
// One sender domain as written in a config or a list: lower-cased, a leading '@' or '.' dropped.
// Empty string when it is not a domain name.
std::string exemption_domain(std::string_view text);

// The shipped list (deploy/greylist/no-retry.txt, compiled in), exempt unless builtin_exemptions
// is false.
std::string_view builtin_exemption_list();

}  // namespace dotgate::policy
