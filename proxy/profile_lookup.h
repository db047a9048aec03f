// proxy/profile_lookup.h — asks the recipient -> profile lookup service (config "profile_lookup")
// from one worker loop, with that worker's cache and keep-alive connections.
//
// Who owns what: the Worker makes one for the lookup config its new sessions run under
// (Worker::profile_lookup) and holds it as long as that config is current; each session that
// looks something up holds it too (a std::shared_ptr), so a session started under an older config
// keeps asking the old service until it ends. It owns its http::Client (retained once, released in
// the destructor: the client then closes its connections from the loop, so the worker's loop ends
// with nothing of ours open) and its cache (lib/lookup/profile_cache.h). Used only from its loop's
// thread.
// Requests: fetch() returns a ticket; the callback runs exactly once, from the loop (never inside
// fetch()), unless cancel(ticket) ran first. Concurrent fetches of one recipient (same cache key)
// share one HTTP request; its deadline counts from the first. When every ticket of a request is
// cancelled, the request is cancelled too. Answers are parsed once (profile, none, error) and
// kept in the cache unless they are errors. Metrics and logs are the session's (it knows the
// client); this only answers.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <uv.h>

#include "lib/config/config.h"
#include "lib/http/client.h"
#include "lib/lookup/profile_answer.h"
#include "lib/lookup/profile_cache.h"

namespace dotgate::proxy {

class ProfileLookup {
 public:
  using Callback = std::function<void(lookup::ProfileAnswer)>;

  // `config.profile_lookup` must be enabled (its URL was checked at load).
  ProfileLookup(uv_loop_t* loop, const config::Config& config);
  ~ProfileLookup();  // cancels what is in flight (no callback runs), releases the client
  ProfileLookup(const ProfileLookup&) = delete;
  ProfileLookup& operator=(const ProfileLookup&) = delete;

  // True when sessions under `config` may use this one: the same lookup settings and the same
  // profile names (an answer is only valid against the names it was checked with).
  bool serves(const config::Config& config) const;

  // A fresh cached answer for `recipient` (a profile or none), else nullopt.
  std::optional<lookup::ProfileAnswer> cached(std::string_view recipient);
  // Asks the service (or joins the request already asking about this recipient).
  std::uint64_t fetch(const std::string& recipient, Callback done);
  void cancel(std::uint64_t ticket);

 private:
  struct Waiter {
    std::uint64_t ticket = 0;
    Callback done;
  };
  struct Flight {
    std::uint64_t request = 0;  // the http::Client's id
    std::vector<Waiter> waiters;
  };
  void answered(const std::string& key, const std::string& recipient, http::ClientResult result);

  config::ProfileLookupConfig config_;
  std::vector<std::string> profiles_;  // the configured names, to check an answer against
  http::Client* client_;
  lookup::ProfileCache cache_;
  std::unordered_map<std::string, Flight> flights_;         // by cache key
  std::unordered_map<std::uint64_t, std::string> tickets_;  // ticket -> its flight's key
  std::uint64_t next_ticket_ = 1;
};

}  // namespace dotgate::proxy
