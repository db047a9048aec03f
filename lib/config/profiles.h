// lib/config/profiles.h — per-recipient profiles (issue 5): which profile a recipient belongs
// to, what a profile runs, and how a transaction whose recipients disagree is split.
//
// Seeds 000/001: the recipients of one message may accept different things. A profile names
// the data_end policies that judge a message for its recipients (and the verdict deadline);
// per-profile thresholds live in each policy's own config ("profiles": {...}). Recipients map
// to profiles by rules: an exact address, a domain (bare or "*@domain"), or "*"; the most
// specific rule wins, whatever the order. The split settings say how a recipient of a second
// profile is deferred (451 or 452 4.5.3, per client class) and which clients are never
// deferred (seed 003: they do not retry; their message is judged under every profile present).
// Everything here is plain data plus pure lookups: unit-tested without sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dotgate::config {

// The data_end verdict as a whole (DESIGN.md: one overall deadline). Under Postfix's
// smtpd_proxy_timeout (100 s) by default, so a Postfix in front never gives up before dotgate
// answers the dot. On expiry the policies still working are cancelled (required ones run on)
// and the message gets `on_deadline`: 451 4.7.0, or accepted as if every policy had passed.
struct VerdictConfig {
  std::chrono::milliseconds deadline{60'000};
  bool accept_on_deadline = false;
};

struct ProfileConfig {
  std::string name;
  bool all_policies = true;           // no "policies" key: every configured policy
  std::vector<std::string> policies;  // policy names, when !all_policies
  std::optional<VerdictConfig> verdict;
};

struct RecipientRule {
  enum class Kind { Address, Domain, CatchAll };
  Kind kind = Kind::CatchAll;
  std::string value;  // lower case: the address or the domain
  std::string profile;
};

// An IPv4 or IPv6 network ("192.0.2.0/24", "2001:db8::/32", a bare address is a /32 or /128).
struct Network {
  int family = 0;  // AF_INET / AF_INET6
  unsigned char bytes[16] = {};
  int prefix = 0;
  bool contains(std::string_view ip) const;  // ip: a literal; false for another family
};
// Empty string when `text` is a valid network, else why not.
std::string parse_network(std::string_view text, Network& out);

// Clients matched by network or by HELO name glob ('*' matches any run, case-insensitive).
struct ClientMatch {
  std::vector<Network> networks;
  std::vector<std::string> helo_globs;
  bool empty() const { return networks.empty() && helo_globs.empty(); }
  bool matches(std::string_view ip, std::string_view helo) const;
};
bool glob_match(std::string_view pattern, std::string_view text);  // case-insensitive

struct SplitClass {
  ClientMatch match;
  int code = 451;
};

struct SplitConfig {
  int code = 451;  // 451 or 452
  std::string text = "Use PRDR or retry immediately, possibly in the same TCP connection, after DATA End of data; retry=0";
  std::vector<SplitClass> classes;  // first match wins
  ClientMatch never_defer;
  int code_for(std::string_view ip, std::string_view helo) const;
};

// What the split does with a recipient (seed 000). Keep: PRDR or a client never deferred, the
// recipient stays whatever its profile. Fix: the first forwarded recipient fixes the
// transaction's profile. Join: same profile as fixed. Defer: another profile: 451/452 4.5.3.
enum class SplitAction { Keep, Fix, Join, Defer };
SplitAction split_decision(bool keep_all, bool profile_fixed, std::string_view fixed_profile, std::string_view profile);

struct ProfilesConfig {
  std::vector<ProfileConfig> profiles;  // empty: no profiles, nothing is split
  std::vector<RecipientRule> rules;
  SplitConfig split;

  bool enabled() const { return !profiles.empty(); }
  const ProfileConfig* find(std::string_view name) const;
  // The profile of `address` by the most specific rule; else the profile named "default";
  // else nullptr (every policy, top-level settings).
  const ProfileConfig* resolve(std::string_view address) const;
};

}  // namespace dotgate::config
