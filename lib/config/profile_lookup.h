// lib/config/profile_lookup.h — the optional HTTP recipient -> profile lookup (issue 5): where the
// service is, how long its answers are kept, and what an unusable answer does.
//
// "profile_lookup" sits at the top level, next to "profiles" and "recipients", and is valid only
// when profiles are configured (it names one of them, or nothing). Read once by config.cc
// (read_profile_lookup); plain data afterwards. The protocol itself (request body, answers) is in
// lib/lookup/profile_answer.h; the cache in lib/lookup/profile_cache.h; the per-worker glue that
// asks the service in proxy/profile_lookup.h.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace dotgate::config {

class Node;

struct ProfileLookupConfig {
  // What an unusable answer (refused, timeout, non-2xx, not JSON, an unknown profile) does to the
  // RCPT. Tempfail is fail-closed: a recipient is never judged under a profile the service did
  // not give (a lenient rule could let through what its strict profile refuses); the client
  // retries later. Rules is fail-open to the config rules, for services that are a refinement.
  enum class OnError { Tempfail, Rules };

  bool enabled = false;
  std::string url;  // "http://IP:PORT/path", checked with http::parse_url at load
  std::chrono::milliseconds timeout{2'000};
  std::chrono::milliseconds ttl{300'000};          // a profile answer; 0: not cached
  std::chrono::milliseconds negative_ttl{60'000};  // "no profile from the service"; 0: not cached
  std::size_t max_entries = 10'000;                // per worker
  std::size_t max_connections = 4;                 // per worker
  OnError on_error = OnError::Tempfail;

  bool operator==(const ProfileLookupConfig&) const = default;
};

// "profile_lookup": {...}. Throws ConfigError with the key's path.
void read_profile_lookup(Node& node, ProfileLookupConfig& out);

}  // namespace dotgate::config
