// lib/config/config.h — dotgate's configuration: the JSON file, validated once, as plain structs.
//
// load_config() refuses an unknown key, a wrong type, an out-of-range or missing required value
// with a ConfigError whose message starts with the key's path ("listeners[0].port: expected
// integer"). A Config is immutable once loaded; a SIGHUP publishes a new one for new sessions while
// running sessions keep theirs (std::shared_ptr<const Config>).
// The `policies` entries are kept as raw JSON here: lib/ knows no policy; policies/registry.cc
// validates each entry (its errors carry the same paths).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/config/profile_lookup.h"
#include "lib/config/profiles.h"
#include "lib/config/store_config.h"
#include "lib/config/rewrite.h"
#include "lib/config/trusted_networks.h"
#include "lib/smtp/data_stream.h"

namespace dotgate::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// TLS on a listener: none, STARTTLS offered after EHLO (RFC 3207), or TLS from the first byte
// (implicit, "port 465 style", RFC 8314).
enum class ListenerTls { Off, StartTls, Implicit };

struct Endpoint {
  std::string address;  // IPv4 or IPv6 literal ("127.0.0.1", "::1")
  int port = 0;
  // Listeners only (downstream and admin leave them as they are): TLS on this listener, and
  // whether MAIL needs TLS first (530 5.7.0, RFC 3207 4). Both need the top-level `tls`.
  ListenerTls tls = ListenerTls::Off;
  bool require_tls = false;
  // Listeners only: every connection starts with a PROXY protocol header (v1 or v2, haproxy's
  // proxy-protocol.txt), accepted only from a peer in proxy_protocol_from; anyone else, or a bad
  // header, is closed with nothing relayed. The list is the listener's own, or the top-level
  // proxy_protocol_from when it names none (resolved when the config is read: never empty here
  // when proxy_protocol is true).
  bool proxy_protocol = false;
  TrustedNetworks proxy_protocol_from{};
  std::string to_string() const;  // "127.0.0.1:25", "[::1]:25"
};

// "127.0.0.1:2525", "[::1]:2525", "localhost:25" is refused (literals only). Throws ConfigError
// with `what` as the path.
Endpoint parse_endpoint(const std::string& text, const std::string& what);

enum class VrfyMode { Reply252, Reply502 };
// smtp.trace_header: when dotgate writes its own Received field on top of a relayed message
// (lib/smtp/received_header.h): never, for clients that used TLS (the MTA behind cannot know it),
// or for every client.
enum class TraceHeader { Off, Tls, Always };
enum class LogFormat { Text, Json };

// STARTTLS towards the MTA: never; when it announces STARTTLS (else plain text); always (an MTA
// without it, or a failed handshake, is a downstream failure).
enum class DownstreamStartTls { Off, Opportunistic, Required };
// What a certificate that fails verification (downstream.tls.ca_file, verify_name) does: the
// downstream connection fails (tempfail), or TLS goes on unverified and the log says so (accept).
enum class TlsVerifyFailure { Tempfail, Accept };

// downstream.tls: how dotgate checks the MTA's certificate. No ca_file: no verification
// (opportunistic encryption, RFC 7435), the facts still name what the MTA presented.
struct DownstreamTlsConfig {
  std::string ca_file;      // PEM bundle of trusted CAs; empty: no verification
  std::string verify_name;  // expected host name in the MTA's certificate (and SNI); needs ca_file
  TlsVerifyFailure on_error = TlsVerifyFailure::Tempfail;
};

struct DownstreamConfig {
  Endpoint endpoint{"127.0.0.1", 10026};
  std::chrono::milliseconds connect_timeout{30'000};
  std::chrono::milliseconds reply_timeout{300'000};     // RFC 5321 4.5.3.2: MAIL/RCPT 5 min
  std::chrono::milliseconds data_end_timeout{600'000};  // RFC 5321 4.5.3.2.6: 10 min
  // Pre-connected, pre-greeted downstream connections kept per worker (proxy/downstream_pool.h).
  // Off by default: each one holds an MTA process (a Postfix smtpd) while idle.
  std::size_t pool_size = 0;
  // An idle pooled connection is closed (and replaced) after this: below Postfix's smtpd_timeout
  // (300 s), so the MTA never times it out first in normal operation.
  std::chrono::milliseconds pool_max_idle{60'000};
  // When set, each pooled connection also says "EHLO <pool_ehlo>" ahead of time; a client whose
  // first command is exactly that EHLO gets the MTA's reply to it at once (downstream_pool.h).
  std::string pool_ehlo;
  // Client sessions one pooled connection may carry, one after another (downstream_pool.h);
  // 1: each connection says QUIT after its session.
  std::size_t pool_max_sessions = 1;
  // Tell the MTA the real client (XCLIENT, Postfix's XCLIENT_README) on every connection, when it
  // announces XCLIENT to dotgate (smtpd_authorized_xclient_hosts). Off by default: it costs an
  // EHLO round trip per connection, and an MTA behind a Postfix before-queue filter gets the
  // client through XFORWARD instead.
  bool xclient = false;
  DownstreamStartTls starttls = DownstreamStartTls::Off;
  DownstreamTlsConfig tls;
};

enum class TlsVersion { Tls12, Tls13 };

// `tls`: dotgate's own certificate for its listeners (STARTTLS and implicit TLS). The files are
// read by lib/tls/tls_context.h (at start and on every SIGHUP), not here: this is the validated shape.
struct TlsConfig {
  bool enabled = false;      // the key is present (cert_file and key_file are then set)
  std::string cert_file;     // PEM: the certificate, then its chain
  std::string key_file;      // PEM: its private key
  std::string ciphers;       // TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's default
  std::string ciphersuites;  // TLS 1.3 ciphersuites; empty: OpenSSL's default
  TlsVersion min_version = TlsVersion::Tls12;
};

struct SmtpConfig {
  std::string hostname = "localhost";                   // in dotgate's own replies
  std::chrono::milliseconds command_timeout{300'000};   // RFC 5321 4.5.3.2.7: 5 min
  std::chrono::milliseconds data_timeout{180'000};      // RFC 5321 4.5.3.2.5: 3 min
  std::size_t max_line_length = 1000;                   // DATA text line, octets incl. CRLF
  smtp::BareLineEnding bare_line_ending = smtp::BareLineEnding::Normalize;
  std::size_t max_recipients = 100;                     // RFC 5321 4.5.3.1.8: at least 100
  std::uint64_t max_message_size = 50ull << 20;         // hard cap, announced in SIZE
  std::size_t max_connections = 1000;                   // all workers together
  std::size_t max_commands = 10000;                     // per session; past it 421
  std::size_t max_errors = 20;                          // bad commands per session; past it 421
  VrfyMode vrfy = VrfyMode::Reply252;
  bool auth_passthrough = false;
  TraceHeader trace_header = TraceHeader::Tls;
  // Clients that may tell dotgate who the real client is with XFORWARD (Postfix's
  // XFORWARD_README; the Postfix in front of dotgate as its smtpd_proxy_filter): only to them is
  // XFORWARD announced and accepted, and their attributes become the client's identity for the
  // policies, the logs and the downstream. Empty (the default): nobody; XFORWARD gets 502.
  TrustedNetworks xforward_from;
};

struct SpoolConfig {
  std::size_t memory_threshold = 256 * 1024;  // bytes kept in memory before spilling to a file
  std::string directory = "/tmp";
};

// Where fail_keep verdicts keep their message (lib/quarantine). Off unless a directory is set; a
// FailKeep verdict without a quarantine is a plain Fail (logged).
struct QuarantineConfig {
  bool enabled = false;
  std::string directory;
  std::uint64_t max_bytes = 1ull << 30;  // the directory's total; past it a kept message tempfails
};

struct Config {
  std::vector<Endpoint> listeners{{"127.0.0.1", 2525}};
  DownstreamConfig downstream;
  Endpoint admin{"127.0.0.1", 8025};
  TlsConfig tls;
  bool admin_enabled = true;
  int workers = 0;  // 0: one per core
  // After each read a worker polls without sleeping for this long (net::BusyPoll); 0: off.
  std::uint32_t busy_poll_us = 0;
  LogFormat log_format = LogFormat::Text;
  std::string log_level = "info";
  std::chrono::milliseconds drain_grace{30'000};
  // After binding its listeners (port 25 needs root or CAP_NET_BIND_SERVICE) dotgate becomes this
  // user (and group: the user's own when empty) before serving; empty: it stays who it is.
  // Read at start only, like the listeners.
  std::string user;
  std::string group;
  // The default trusted list of proxy_protocol listeners (each may name its own), and how long a
  // connection may take to send its whole PROXY header: the spec asks for at least 3 s (a lost
  // SYN-ACK's retransmit); past it the connection closes, nothing relayed.
  TrustedNetworks proxy_protocol_from;
  std::chrono::milliseconds proxy_protocol_timeout{5'000};
  SmtpConfig smtp;
  SpoolConfig spool;
  QuarantineConfig quarantine;
  VerdictConfig verdict;
  ProfilesConfig profiles;  // "profiles", "recipients", "split"
  ProfileLookupConfig profile_lookup;  // "profile_lookup": off unless configured
  StoreConfig store;  // "store": where greylisting keeps its state (lib/store)
  RewriteConfig rewrite;               // "rewrite": reply rewriting rules, maintenance flag
  nlohmann::json policies = nlohmann::json::array();  // validated by policies/registry.cc

  std::string source;  // the file it came from, for logs
};

// Parses and validates. Throws ConfigError.
Config parse_config(const nlohmann::json& document);
// Reads FILE, parses JSON (syntax errors reported with line/column), then parse_config.
Config load_config_file(const std::string& path);

}  // namespace dotgate::config
