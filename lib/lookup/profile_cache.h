// lib/lookup/profile_cache.h — what the profile lookup service said about recently seen
// recipients, each answer kept for its time to live, at most max_entries of them.
//
// One per worker loop (proxy/profile_lookup.h owns it); not thread-safe, no I/O. The clock is
// injected (milliseconds, monotonic: uv_now in the daemon, a variable in the unit tests), so the
// expiry is tested without sleeping. The key is the recipient in ASCII lower case: "Bob@X" and
// "bob@x" are one entry (the service is asked with the first spelling seen).
// What is kept: a profile for `ttl`, "no profile" for `negative_ttl`; a zero TTL keeps nothing of
// that kind; errors are never kept (the next RCPT asks again). When full, the entry used least
// recently goes; an expired entry goes when it is next looked at (or by the LRU order).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "lib/lookup/profile_answer.h"

namespace dotgate::lookup {

class ProfileCache {
 public:
  using Clock = std::function<std::uint64_t()>;  // milliseconds, monotonic

  ProfileCache(std::chrono::milliseconds ttl, std::chrono::milliseconds negative_ttl, std::size_t max_entries,
               Clock now);

  // A fresh answer (Kind::Profile or Kind::None), else nullopt. A hit becomes the most recent.
  std::optional<ProfileAnswer> get(std::string_view recipient);
  void put(std::string_view recipient, const ProfileAnswer& answer);
  std::size_t size() const { return entries_.size(); }

  static std::string key(std::string_view recipient);

 private:
  struct Entry {
    ProfileAnswer answer;
    std::uint64_t expires_at = 0;
    std::list<std::string>::iterator recent;  // its place in recent_
  };
  void erase(std::unordered_map<std::string, Entry>::iterator it);

  std::uint64_t ttl_ms_;
  std::uint64_t negative_ttl_ms_;
  std::size_t max_entries_;
  Clock now_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> recent_;  // keys, most recently used first
};

}  // namespace dotgate::lookup
