// lib/config/tls.cc — the TLS keys of the config (see tls_reader.h, config.h for the structs).
//
// Only the shape is checked here: paths are absolute, names are host names, choices are known.
// Whether the files load and the cipher strings mean anything is OpenSSL's to say; that happens
// when lib/tls/tls_context.h builds a context from this, at start and on SIGHUP, and its errors
// carry the same key paths ("tls.cert_file: ..."), so a bad file is refused like a bad key.
#include "lib/config/tls_reader.h"

#include <string_view>

namespace dotgate::config {

namespace {

// Absolute, as spool.directory: workers never chdir, but a relative path would depend on where
// dotgate started, and a SIGHUP reload must read the same file as the start did.
std::string read_absolute_path(Node& node) {
  const auto& s = node.as_string();
  if (s.empty() || s.front() != '/' || s.find('\0') != std::string::npos) node.fail("expected absolute path");
  return s;
}

// An OpenSSL cipher string goes to OpenSSL unparsed; printable ASCII only, so a stray byte is a
// config error here, not an obscure "no cipher match" later. 1024 is far past any real list.
std::string read_cipher_string(Node& node) {
  const auto& s = node.as_string();
  if (s.empty() || s.size() > 1024) node.fail("expected a cipher string of 1 to 1024 characters");
  for (char c : s)
    if (c < 0x21 || c > 0x7e) node.fail("expected printable ASCII without spaces (':'-separated names)");
  return s;
}

// The name the MTA's certificate must carry (RFC 6125 reference identifier) and dotgate's SNI:
// a DNS name, no wildcard (a wildcard is what a certificate holds, not what a client expects).
std::string read_host_name(Node& node) {
  const auto& s = node.as_string();
  bool ok = !s.empty() && s.size() <= 253 && s.front() != '.' && s.front() != '-';
  for (char c : s)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
  if (!ok) node.fail("expected a host name (letters, digits, '-', '.')");
  return s;
}

}  // namespace

void read_tls(Node& node, TlsConfig& out) {
  node.expect_object();
  out.enabled = true;
  {
    auto n = node.required_member("cert_file");
    out.cert_file = read_absolute_path(n);
  }
  {
    auto n = node.required_member("key_file");
    out.key_file = read_absolute_path(n);
  }
  if (auto n = node.member("ciphers")) out.ciphers = read_cipher_string(*n);
  if (auto n = node.member("ciphersuites")) out.ciphersuites = read_cipher_string(*n);
  // No 1.0 or 1.1: RFC 8996 deprecates them, and Debian's OpenSSL refuses them at its default
  // security level anyway. 1.3 only shuts out older clients, which then send in plain text.
  static constexpr std::string_view kVersions[] = {"1.2", "1.3"};
  if (auto n = node.member("min_version"))
    out.min_version = n->as_choice(kVersions) == 0 ? TlsVersion::Tls12 : TlsVersion::Tls13;
  node.done();
}

void read_listener_tls(Node& listener, Endpoint& out) {
  static constexpr std::string_view kModes[] = {"off", "starttls", "implicit"};
  if (auto n = listener.member("tls")) {
    static constexpr ListenerTls kValues[] = {ListenerTls::Off, ListenerTls::StartTls, ListenerTls::Implicit};
    out.tls = kValues[n->as_choice(kModes)];
  }
  if (auto n = listener.member("require_tls")) {
    out.require_tls = n->as_bool();
    // Without TLS on the listener no client could ever send MAIL: a typo, not a policy.
    if (out.require_tls && out.tls == ListenerTls::Off) n->fail("needs \"tls\": \"starttls\" or \"implicit\" on this listener");
  }
}

void read_downstream_tls(Node& downstream, DownstreamConfig& out) {
  static constexpr std::string_view kModes[] = {"off", "opportunistic", "required"};
  if (auto n = downstream.member("starttls")) {
    static constexpr DownstreamStartTls kValues[] = {DownstreamStartTls::Off, DownstreamStartTls::Opportunistic,
                                                     DownstreamStartTls::Required};
    out.starttls = kValues[n->as_choice(kModes)];
  }
  auto node = downstream.member("tls");
  if (!node) return;
  node->expect_object();
  if (out.starttls == DownstreamStartTls::Off) node->fail("needs downstream.starttls \"opportunistic\" or \"required\"");
  if (auto n = node->member("ca_file")) out.tls.ca_file = read_absolute_path(*n);
  if (auto n = node->member("verify_name")) {
    out.tls.verify_name = read_host_name(*n);
    // A name is only checked inside a verified chain: without a CA anyone can forge it.
    if (out.tls.ca_file.empty()) n->fail("needs downstream.tls.ca_file");
  }
  static constexpr std::string_view kOutcomes[] = {"tempfail", "accept"};
  if (auto n = node->member("on_error")) {
    out.tls.on_error = n->as_choice(kOutcomes) == 0 ? TlsVerifyFailure::Tempfail : TlsVerifyFailure::Accept;
    if (out.tls.ca_file.empty()) n->fail("needs downstream.tls.ca_file (nothing is verified without it)");
  }
  node->done();
}

void check_tls_references(const Config& config) {
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    if (config.listeners[i].tls != ListenerTls::Off && !config.tls.enabled)
      throw ConfigError("listeners[" + std::to_string(i) + "].tls: needs the top-level \"tls\" (cert_file, key_file)");
  }
}

}  // namespace dotgate::config
