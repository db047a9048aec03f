// policies/rspamd_request.h — the request headers of an rspamd /checkv2 call, from the envelope:
// pure, called by policies/rspamd.cc at data_end and by the unit tests.
//
// rspamd's protocol ("Rspamd protocol", HTTP headers of /checkv2): From (MAIL FROM), Rcpt (one
// per recipient), IP (the client's address, without port), Helo, Queue-Id. Hostname (the client's
// resolved name) and User (the authenticated login) are not sent: the Envelope carries neither,
// and a made-up value would mislead rspamd's rules (hfilter scores "unknown" hostnames).
// Header values come from the client (HELO, addresses): CR/LF and other controls become '?', so
// the client cannot add headers of its own to our request.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policies/policy.h"

namespace dotgate::policy {

// "192.0.2.1:25" -> "192.0.2.1", "[2001:db8::1]:25" -> "2001:db8::1", a bare address as it is;
// "" for anything that is not an IP literal ("unknown").
std::string rspamd_client_ip(std::string_view peer);

std::vector<std::pair<std::string, std::string>> rspamd_request_headers(const Envelope& envelope);

}  // namespace dotgate::policy
