// policies/greylist_exemptions.cc — see greylist_exemptions.h.
#include "policies/greylist_exemptions.h"

#include <algorithm>
#include <cctype>

namespace dotgate::policy {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool domain_within(std::string_view domain, std::string_view exempt) {
  if (domain.size() < exempt.size()) return false;
  if (domain.size() == exempt.size()) return domain == exempt;
  return domain.substr(domain.size() - exempt.size()) == exempt && domain[domain.size() - exempt.size() - 1] == '.';
}

}  // namespace

std::string exemption_domain(std::string_view text) {
  text = trim(text);
  if (!text.empty() && (text.front() == '@' || text.front() == '.')) text.remove_prefix(1);
  if (text.empty() || text.size() > 253) return {};
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '-' || c == '.' || c == '_')) return {};
    out += static_cast<char>(std::tolower(u));
  }
  return out;
}

const char* GreylistExemptions::match(std::string_view client_address, std::string_view helo, std::string_view sender) const {
  for (const auto& n : clients.networks)
    if (n.contains(client_address)) return "network";
  if (!helo.empty())
    for (const auto& g : clients.helo_globs)
      if (config::glob_match(g, helo)) return "helo";
  if (auto at = sender.rfind('@'); at != std::string_view::npos && !sender_domains.empty()) {
    std::string domain(sender.substr(at + 1));
    for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& d : sender_domains)
      if (domain_within(domain, d)) return "sender_domain";
  }
  return nullptr;
}

bool GreylistExemptions::exempts_profile(std::string_view profile) const {
  return std::find(profiles.begin(), profiles.end(), profile) != profiles.end();
}

std::string parse_exemption_list(std::string_view text, std::string_view source, GreylistExemptions& out) {
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    auto where = [&] { return std::string(source) + ":" + std::to_string(line_no) + ": "; };
    auto space = line.find_first_of(" \t");
    if (space == std::string_view::npos) return where() + "expected KIND VALUE (network, helo or sender_domain)";
    std::string_view kind = line.substr(0, space);
    std::string_view value = trim(line.substr(space + 1));
    if (value.find_first_of(" \t") != std::string_view::npos) return where() + "one value per line";
    if (kind == "network") {
      config::Network n;
      std::string why = config::parse_network(value, n);
      if (!why.empty()) return where() + why;
      out.clients.networks.push_back(n);
    } else if (kind == "helo") {
      out.clients.helo_globs.emplace_back(value);
    } else if (kind == "sender_domain") {
      std::string d = exemption_domain(value);
      if (d.empty()) return where() + "expected a domain name";
      out.sender_domains.push_back(std::move(d));
    } else {
      return where() + "unknown kind \"" + std::string(kind) + "\" (network, helo or sender_domain)";
    }
  }
  return {};
}

}  // namespace dotgate::policy
