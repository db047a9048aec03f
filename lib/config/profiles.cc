// lib/config/profiles.cc — see profiles.h. Reading the "profiles", "recipients" and "split" keys
// (read_profiles, called by config.cc) and the pure lookups the session uses.
#include "lib/config/profiles.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "lib/config/node.h"
#include "lib/config/profiles_reader.h"

namespace dotgate::config {

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool parse_ip(std::string_view text, int& family, unsigned char* bytes) {
  std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), bytes) == 1) {
    family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), bytes) == 1) {
    family = AF_INET6;
    return true;
  }
  return false;
}
}  // namespace

// ---- lookups ------------------------------------------------------------------------------------

std::string parse_network(std::string_view text, Network& out) {
  std::string_view ip = text;
  int prefix = -1;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    ip = text.substr(0, slash);
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || !std::all_of(digits.begin(), digits.end(), ::isdigit))
      return "expected a network like 192.0.2.0/24 or 2001:db8::/32";
    prefix = std::stoi(std::string(digits));
  }
  Network n;
  if (!parse_ip(ip, n.family, n.bytes)) return "expected a network like 192.0.2.0/24 or 2001:db8::/32";
  int max = n.family == AF_INET ? 32 : 128;
  if (prefix < 0) prefix = max;
  if (prefix > max) return "prefix length over " + std::to_string(max);
  n.prefix = prefix;
  out = n;
  return {};
}

bool Network::contains(std::string_view ip) const {
  int f = 0;
  unsigned char b[16] = {};
  if (!parse_ip(ip, f, b)) return false;
  if (f != family) {
    // An IPv4 client on a dual-stack listener shows as ::ffff:a.b.c.d.
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET && f == AF_INET6 && std::memcmp(b, kMapped, 12) == 0) {
      std::memmove(b, b + 12, 4);
    } else {
      return false;
    }
  }
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(b, bytes, static_cast<std::size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (b[full] & mask) == (bytes[full] & mask);
}

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative '*' matching with one backtrack point: linear enough for HELO names.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  auto eq = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  };
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && eq(pattern[p], text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

SplitAction split_decision(bool keep_all, bool profile_fixed, std::string_view fixed_profile, std::string_view profile) {
  if (keep_all) return SplitAction::Keep;
  if (!profile_fixed) return SplitAction::Fix;
  return profile == fixed_profile ? SplitAction::Join : SplitAction::Defer;
}

bool ClientMatch::matches(std::string_view ip, std::string_view helo) const {
  for (const auto& n : networks)
    if (n.contains(ip)) return true;
  if (!helo.empty())
    for (const auto& g : helo_globs)
      if (glob_match(g, helo)) return true;
  return false;
}

int SplitConfig::code_for(std::string_view ip, std::string_view helo) const {
  for (const auto& c : classes)
    if (c.match.matches(ip, helo)) return c.code;
  return code;
}

const ProfileConfig* ProfilesConfig::find(std::string_view name) const {
  for (const auto& p : profiles)
    if (p.name == name) return &p;
  return nullptr;
}

const ProfileConfig* ProfilesConfig::resolve(std::string_view address) const {
  std::string a = lower(address);
  std::string_view domain;
  if (auto at = a.rfind('@'); at != std::string::npos) domain = std::string_view(a).substr(at + 1);
  const RecipientRule* best = nullptr;
  for (const auto& r : rules) {
    bool hit = (r.kind == RecipientRule::Kind::Address && r.value == a) ||
               (r.kind == RecipientRule::Kind::Domain && r.value == domain) ||
               r.kind == RecipientRule::Kind::CatchAll;
    // Kind is ordered most specific first: a lower kind wins; among equals, the first rule.
    if (hit && (!best || r.kind < best->kind)) best = &r;
  }
  if (best) return find(best->profile);
  return find("default");
}

// ---- reading ------------------------------------------------------------------------------------

namespace {
ClientMatch read_client_match(Node& node) {
  node.expect_object();
  ClientMatch m;
  if (auto n = node.member("networks")) {
    n->expect_array();
    for (std::size_t i = 0; i < n->value().size(); ++i) {
      Node e = n->element(i);
      Network net;
      std::string error = parse_network(e.as_string(), net);
      if (!error.empty()) e.fail(error);
      m.networks.push_back(net);
    }
  }
  if (auto n = node.member("helo")) {
    n->expect_array();
    for (std::size_t i = 0; i < n->value().size(); ++i) {
      Node e = n->element(i);
      if (e.as_string().empty()) e.fail("must not be empty");
      m.helo_globs.push_back(e.as_string());
    }
  }
  node.done();
  return m;
}

int read_split_code(Node& node) {
  auto code = node.as_uint(400, 499);
  if (code != 451 && code != 452) node.fail("expected 451 or 452");
  return static_cast<int>(code);
}
}  // namespace

void read_profile_list(Node& node, ProfilesConfig& out, const VerdictReader& read_verdict) {
  node.expect_array();
  for (std::size_t i = 0; i < node.value().size(); ++i) {
    Node entry = node.element(i);
    entry.expect_object();
    ProfileConfig p;
    Node name = entry.required_member("name");
    p.name = name.as_string();
    if (p.name.empty()) name.fail("must not be empty");
    if (out.find(p.name)) name.fail("duplicate profile \"" + p.name + "\"");
    if (auto n = entry.member("policies")) {
      n->expect_array();
      p.all_policies = false;
      for (std::size_t k = 0; k < n->value().size(); ++k) p.policies.push_back(n->element(k).as_string());
    }
    if (auto n = entry.member("verdict")) {
      VerdictConfig v;
      read_verdict(*n, v);
      p.verdict = v;
    }
    entry.done();
    out.profiles.push_back(std::move(p));
  }
}

void read_recipient_rules(Node& node, ProfilesConfig& out) {
  node.expect_array();
  for (std::size_t i = 0; i < node.value().size(); ++i) {
    Node entry = node.element(i);
    entry.expect_object();
    Node match = entry.required_member("match");
    Node profile = entry.required_member("profile");
    RecipientRule r;
    std::string m = lower(match.as_string());
    if (m == "*") {
      r.kind = RecipientRule::Kind::CatchAll;
    } else if (m.rfind("*@", 0) == 0 && m.size() > 2) {
      r.kind = RecipientRule::Kind::Domain;
      r.value = m.substr(2);
    } else if (m.find('@') == std::string::npos && !m.empty()) {
      r.kind = RecipientRule::Kind::Domain;
      r.value = m;
    } else if (m.find('@') != std::string::npos && m.find('*') == std::string::npos && m.front() != '@' && m.back() != '@') {
      r.kind = RecipientRule::Kind::Address;
      r.value = m;
    } else {
      match.fail("expected an address, a domain, \"*@domain\" or \"*\"");
    }
    r.profile = profile.as_string();
    if (!out.find(r.profile)) profile.fail("unknown profile \"" + r.profile + "\"");
    entry.done();
    out.rules.push_back(std::move(r));
  }
}

void read_split(Node& node, SplitConfig& split) {
  node.expect_object();
  if (auto n = node.member("code")) split.code = read_split_code(*n);
  if (auto n = node.member("text")) {
    split.text = n->as_string();
    if (split.text.empty() || split.text.find_first_of("\r\n") != std::string::npos)
      n->fail("expected one line of text");
  }
  if (auto n = node.member("classes")) {
    n->expect_array();
    for (std::size_t i = 0; i < n->value().size(); ++i) {
      Node entry = n->element(i);
      entry.expect_object();
      SplitClass c;
      Node code = entry.required_member("code");
      c.code = read_split_code(code);
      // The class's own keys sit beside "code": {"networks": [...], "helo": [...], "code": 452}.
      ClientMatch m;
      if (auto k = entry.member("networks")) {
        json wrapper = {{"networks", k->value()}};
        Node w(wrapper, entry.path());
        m.networks = read_client_match(w).networks;
      }
      if (auto k = entry.member("helo")) {
        json wrapper = {{"helo", k->value()}};
        Node w(wrapper, entry.path());
        m.helo_globs = read_client_match(w).helo_globs;
      }
      if (m.empty()) entry.fail("expected \"networks\" or \"helo\"");
      c.match = std::move(m);
      entry.done();
      split.classes.push_back(std::move(c));
    }
  }
  if (auto n = node.member("never_defer")) split.never_defer = read_client_match(*n);
  node.done();
}

}  // namespace dotgate::config
