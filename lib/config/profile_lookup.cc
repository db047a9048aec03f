// lib/config/profile_lookup.cc — reading "profile_lookup" (see profile_lookup.h). Called by
// config.cc after "profiles"; owns nothing past the call.
#include "lib/config/profile_lookup.h"

#include <string_view>

#include "lib/config/node.h"
#include "lib/http/client.h"

namespace dotgate::config {

void read_profile_lookup(Node& node, ProfileLookupConfig& out) {
  node.expect_object();
  ProfileLookupConfig c;
  c.enabled = true;
  {
    Node url = node.required_member("url");
    c.url = url.as_string();
    http::Url parsed;
    std::string error = http::parse_url(c.url, parsed);
    if (!error.empty()) url.fail(error);
  }
  // The lookup holds an RCPT (and every command pipelined behind it): above a minute a client
  // gives up (RFC 5321 4.5.3.2.3 lets it wait 5 minutes for RCPT, but the whole session is
  // stuck); below 50 ms even a loopback service on a busy host fails for nothing.
  if (auto n = node.member("timeout")) {
    c.timeout = n->as_seconds(60, false);
    if (c.timeout < std::chrono::milliseconds(50)) n->fail("expected number of seconds >= 0.05 and <= 60");
  }
  // At most a day: a longer memory of who belongs where outlives any change the service makes.
  if (auto n = node.member("ttl")) c.ttl = n->as_seconds(86400, true);
  if (auto n = node.member("negative_ttl")) c.negative_ttl = n->as_seconds(86400, true);
  // Each entry is an address and a profile name (~100 bytes): 10 million per worker is a
  // gigabyte, past any sensible recipient population; at least 1.
  if (auto n = node.member("max_entries")) c.max_entries = static_cast<std::size_t>(n->as_uint(1, 10'000'000));
  // As the downstream pool: more is a typo that would open that many sockets per worker.
  if (auto n = node.member("max_connections")) c.max_connections = static_cast<std::size_t>(n->as_uint(1, 64));
  static constexpr std::string_view kOnError[] = {"tempfail", "rules"};
  if (auto n = node.member("on_error"))
    c.on_error = n->as_choice(kOnError) == 0 ? ProfileLookupConfig::OnError::Tempfail : ProfileLookupConfig::OnError::Rules;
  node.done();
  out = std::move(c);
}

}  // namespace dotgate::config
