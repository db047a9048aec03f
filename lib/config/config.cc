// lib/config/config.cc — reads dotgate's JSON configuration and validates it into a Config.
//
// Called by proxy/ at start-up, on SIGHUP and for --check-config (load_config_file), and for the
// CLI overrides --listen/--downstream/--admin (parse_endpoint). Owns nothing past the call: the
// result is a plain value; any problem throws ConfigError and leaves nothing behind, so a failed
// SIGHUP reload keeps the running Config untouched.
//
// Validation walks the document with a Node: a JSON value that knows its path
// ("listeners[0].port") and, for an object, which keys were read. Each object is read key by key
// and then closed with done(), which refuses the first key nobody read, so a misspelt key
// ("max_line_lenght") is an error, never a silently ignored setting. Every error message starts
// with the offending key's path, so the operator knows where to look without a line number.
//
// Ranges (why each bound) are next to the code that reads the key, in read_* below.
// load_config_file prefixes the file name to what concerns the file itself (cannot open, JSON
// syntax with line and column); validation errors keep the path first, as config.h promises.
#include "lib/config/config.h"
#include "lib/config/node.h"
#include "lib/config/profiles_reader.h"
#include "lib/config/proxy_protocol_reader.h"
#include "lib/config/rewrite_reader.h"
#include "lib/config/tls_reader.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string_view>

namespace dotgate::config {

namespace {

using nlohmann::json;

// inet_pton accepts exactly the literals we want: dotted quad (no octal, no shorthand like
// "127.1") and RFC 4291 IPv6 text. No names: a config must not depend on DNS at start-up.
bool is_ip_literal(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// Canonical text of a literal, to spot two spellings of one address ("::1", "0::1").
std::string canonical_address(const std::string& text) {
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  int family = inet_pton(AF_INET, text.c_str(), buf) == 1 ? AF_INET : AF_INET6;
  if (inet_pton(family, text.c_str(), buf) != 1 || !inet_ntop(family, buf, out, sizeof out)) return text;
  return out;
}

std::string read_address(Node& node) {
  const auto& s = node.as_string();
  if (!is_ip_literal(s)) node.fail("expected IPv4 or IPv6 address literal");
  return s;
}

int read_port(Node& node) { return static_cast<int>(node.as_uint(1, 65535)); }

// {"address": ..., "port": ...}. A listener must name its port; downstream and admin have
// defaults for both (the ones in config.h).
void read_endpoint(Node& node, Endpoint& out, bool port_required) {
  if (auto n = node.member("address")) out.address = read_address(*n);
  if (port_required) {
    auto n = node.required_member("port");
    out.port = read_port(n);
  } else if (auto n = node.member("port")) {
    out.port = read_port(*n);
  }
}

// Timeouts: at most one day. Anything longer is a typo (milliseconds written as seconds) and
// would pin a session's memory for that long.
constexpr double kMaxTimeoutSeconds = 86400;

void read_listeners(Node& node, Config& config) {
  node.expect_array();
  if (node.value().empty()) node.fail("must not be empty");
  // 64 listeners is far beyond any deployment; a bound keeps a typo'd generator from opening
  // thousands of sockets per worker.
  if (node.value().size() > 64) node.fail("at most 64 listeners");
  config.listeners.clear();
  for (std::size_t i = 0; i < node.value().size(); ++i) {
    Node entry = node.element(i);
    entry.expect_object();
    Endpoint e{"127.0.0.1", 0};  // a listener's address defaults to loopback: never open by accident
    read_endpoint(entry, e, /*port_required=*/true);
    read_listener_tls(entry, e);
    read_listener_proxy_protocol(entry, e);
    entry.done();
    for (std::size_t j = 0; j < config.listeners.size(); ++j) {
      const auto& prev = config.listeners[j];
      if (prev.port == e.port && canonical_address(prev.address) == canonical_address(e.address))
        entry.fail("duplicate of listeners[" + std::to_string(j) + "]");
    }
    config.listeners.push_back(std::move(e));
  }
}

bool is_reply_hostname(const std::string& s);

void read_downstream(Node& node, DownstreamConfig& d) {
  node.expect_object();
  read_endpoint(node, d.endpoint, /*port_required=*/false);
  if (auto n = node.member("connect_timeout")) d.connect_timeout = n->as_seconds(kMaxTimeoutSeconds, false);
  if (auto n = node.member("reply_timeout")) d.reply_timeout = n->as_seconds(kMaxTimeoutSeconds, false);
  if (auto n = node.member("data_end_timeout")) d.data_end_timeout = n->as_seconds(kMaxTimeoutSeconds, false);
  if (auto n = node.member("xclient")) d.xclient = n->as_bool();
  if (auto n = node.member("pool")) {
    n->expect_object();
    // 64 per worker is already more idle MTA processes than any deployment wants; a bound keeps a
    // typo from opening thousands of downstream connections at start-up.
    if (auto m = n->member("size")) d.pool_size = static_cast<std::size_t>(m->as_uint(0, 64));
    // Past 290 s Postfix's own smtpd_timeout (300 s) would close it first.
    if (auto m = n->member("max_idle")) d.pool_max_idle = m->as_seconds(290, false);
    // Exim's smtp_accept_max_per_connection is 1000 messages: stay well under any such limit.
    if (auto m = n->member("max_sessions")) d.pool_max_sessions = static_cast<std::size_t>(m->as_uint(1, 1000));
    // Goes on the wire after "EHLO ": the same rule as smtp.hostname (no CR, LF or space).
    if (auto m = n->member("ehlo")) {
      d.pool_ehlo = m->as_string();
      if (!is_reply_hostname(d.pool_ehlo)) m->fail("expected a domain name (letters, digits, '-', '.') or [address]");
    }
    n->done();
  }
  read_downstream_tls(node, d);
  node.done();
}

void read_admin(Node& node, Config& config) {
  node.expect_object();
  read_endpoint(node, config.admin, /*port_required=*/false);
  if (auto n = node.member("enabled")) config.admin_enabled = n->as_bool();
  node.done();
}

void read_log(Node& node, Config& config) {
  node.expect_object();
  static constexpr std::string_view kFormats[] = {"text", "json"};
  // spdlog's level names, so proxy/ can hand the string to spdlog::level::from_str.
  static constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (auto n = node.member("format")) config.log_format = n->as_choice(kFormats) == 0 ? LogFormat::Text : LogFormat::Json;
  if (auto n = node.member("level")) config.log_level = std::string(kLevels[n->as_choice(kLevels)]);
  node.done();
}

// The name dotgate uses in its own replies (greeting, EHLO, 421). It goes on the wire, so only
// what RFC 5321 allows in a Domain (letters, digits, '-', '.'), or an address literal "[...]":
// a CR or LF here would let the config inject reply lines.
bool is_reply_hostname(const std::string& s) {
  if (s.empty() || s.size() > 255) return false;
  if (s.front() == '[' && s.back() == ']') {
    auto inner = s.substr(1, s.size() - 2);
    if (inner.rfind("IPv6:", 0) == 0) inner = inner.substr(5);
    return is_ip_literal(inner);
  }
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

void read_smtp(Node& node, SmtpConfig& smtp) {
  node.expect_object();
  if (auto n = node.member("hostname")) {
    smtp.hostname = n->as_string();
    if (!is_reply_hostname(smtp.hostname)) n->fail("expected a domain name (letters, digits, '-', '.') or [address]");
  }
  if (auto n = node.member("command_timeout")) smtp.command_timeout = n->as_seconds(kMaxTimeoutSeconds, false);
  if (auto n = node.member("data_timeout")) smtp.data_timeout = n->as_seconds(kMaxTimeoutSeconds, false);
  // RFC 5321 4.5.3.1.6 requires accepting 1000-octet lines; values down to 80 are allowed for
  // tests and hostile setups, knowing that they refuse RFC-valid mail. The upper bound is the
  // per-session line buffer (invariant 5: bounded memory).
  if (auto n = node.member("max_line_length")) smtp.max_line_length = n->as_uint(80, 1 << 20);
  static constexpr std::string_view kBareLineEndings[] = {"normalize", "reject"};
  if (auto n = node.member("bare_line_ending"))
    smtp.bare_line_ending = n->as_choice(kBareLineEndings) == 0 ? smtp::BareLineEnding::Normalize
                                                               : smtp::BareLineEnding::Reject;
  // RFC 5321 4.5.3.1.8 asks for at least 100; fewer is allowed (the client gets 452 and retries).
  if (auto n = node.member("max_recipients")) smtp.max_recipients = n->as_uint(1, 100000);
  // Up to 1 TiB: the size is announced in EHLO SIZE and counted in 64 bits; bodies spool to disk.
  if (auto n = node.member("max_message_size")) smtp.max_message_size = n->as_uint(1, 1ull << 40);
  if (auto n = node.member("max_connections")) smtp.max_connections = n->as_uint(1, 1000000);
  if (auto n = node.member("max_commands")) smtp.max_commands = n->as_uint(1, 100000000);
  if (auto n = node.member("max_errors")) smtp.max_errors = n->as_uint(1, 100000);
  if (auto n = node.member("vrfy")) {
    // 252: "cannot verify, but will accept" (RFC 5321 3.5.3, the usual answer); 502: not implemented.
    const json& v = n->value();
    std::uint64_t code = v.is_number_unsigned() ? v.get<std::uint64_t>() : 0;
    if (code != 252 && code != 502) n->fail("expected one of 252, 502");
    smtp.vrfy = code == 252 ? VrfyMode::Reply252 : VrfyMode::Reply502;
  }
  if (auto n = node.member("auth_passthrough")) smtp.auth_passthrough = n->as_bool();
  static constexpr std::string_view kTraceHeaders[] = {"off", "tls", "always"};
  if (auto n = node.member("trace_header")) {
    static constexpr TraceHeader kValues[] = {TraceHeader::Off, TraceHeader::Tls, TraceHeader::Always};
    smtp.trace_header = kValues[n->as_choice(kTraceHeaders)];
  }
  if (auto n = node.member("xforward_from")) {
    // Each entry a network ("127.0.0.1/32", "::1"): whoever is in it may rewrite the audit trail.
    n->expect_array();
    // A handful of filter hosts; a bound keeps a generated list from making every EHLO a long scan.
    if (n->value().size() > 256) n->fail("at most 256 networks");
    for (std::size_t i = 0; i < n->value().size(); ++i) {
      Node e = n->element(i);
      Network net;
      std::string error = parse_network(e.as_string(), net);
      if (!error.empty()) e.fail(error);
      smtp.xforward_from.networks.push_back(net);
    }
  }
  node.done();
}

void read_spool(Node& node, SpoolConfig& spool) {
  node.expect_object();
  // 0 means "always a file"; above 1 GiB per message in memory defeats the point of spooling.
  if (auto n = node.member("memory_threshold")) spool.memory_threshold = n->as_uint(0, 1ull << 30);
  if (auto n = node.member("directory")) {
    spool.directory = n->as_string();
    // Absolute: workers never chdir, but a relative path would depend on where dotgate started.
    if (spool.directory.empty() || spool.directory.front() != '/' ||
        spool.directory.find('\0') != std::string::npos)
      n->fail("expected absolute path");
  }
  node.done();
}

void read_quarantine(Node& node, QuarantineConfig& q) {
  node.expect_object();
  if (auto n = node.member("directory")) {
    q.directory = n->as_string();
    // Absolute for the same reason as spool.directory. Existence is the writer's business: a
    // missing directory makes each kept message tempfail (never lost), and shows in the log.
    if (q.directory.empty() || q.directory.front() != '/' || q.directory.find('\0') != std::string::npos)
      n->fail("expected absolute path");
    q.enabled = true;
  }
  // At least 1 MiB (below that nothing useful fits); at most 1 PiB, far past any disk.
  if (auto n = node.member("max_bytes")) q.max_bytes = n->as_uint(1ull << 20, 1ull << 50);
  node.done();
}

void read_verdict(Node& node, VerdictConfig& v) {
  node.expect_object();
  // At most an hour: no client waits longer for the reply to its dot. Fractions are for tests.
  if (auto n = node.member("deadline")) {
    v.deadline = n->as_seconds(3600, false);
    if (v.deadline < std::chrono::milliseconds(100)) n->fail("expected number of seconds >= 0.1 and <= 3600");
  }
  static constexpr std::string_view kOutcomes[] = {"tempfail", "accept"};
  if (auto n = node.member("on_deadline")) v.accept_on_deadline = n->as_choice(kOutcomes) == 1;
  node.done();
}

// A user or group name as the system databases hold it (POSIX portable names, plus the '$' of
// machine accounts): whether it exists is for start-up to say (proxy/privileges.h), but nothing
// here can smuggle a separator or a control byte into a lookup or a log line.
std::string read_account_name(Node& node) {
  const auto& s = node.as_string();
  bool ok = !s.empty() && s.size() <= 64 && s.front() != '-';
  for (char c : s) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                c == '-' || c == '.' || c == '$');
  }
  if (!ok) node.fail("expected a user or group name (letters, digits, '_', '-', '.')");
  return s;
}

// Only the shape is checked here; each entry's own keys belong to policies/registry.cc.
void read_policies(Node& node, Config& config) {
  node.expect_array();
  for (std::size_t i = 0; i < node.value().size(); ++i) {
    Node entry = node.element(i);
    entry.expect_object();
    Node type = entry.required_member("type");
    if (type.as_string().empty()) type.fail("must not be empty");
  }
  config.policies = node.value();
}

}  // namespace

std::string Endpoint::to_string() const {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

Endpoint parse_endpoint(const std::string& text, const std::string& what) {
  auto bad = [&]() -> ConfigError {
    return ConfigError(what + ": expected ADDRESS:PORT with an IP literal (\"127.0.0.1:25\", \"[::1]:25\"), got \"" +
                       text + "\"");
  };
  Endpoint e;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') throw bad();
    e.address = text.substr(1, close - 1);
    port = text.substr(close + 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET6, e.address.c_str(), buf) != 1) throw bad();
  } else {
    // No brackets: IPv4 only. "::1:25" is ambiguous, so an IPv6 address must be bracketed.
    auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) throw bad();
    e.address = text.substr(0, colon);
    port = text.substr(colon + 1);
    unsigned char buf[4];
    if (inet_pton(AF_INET, e.address.c_str(), buf) != 1) throw bad();
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) throw bad();
  e.port = std::stoi(port);
  if (e.port < 1 || e.port > 65535) throw ConfigError(what + ": port must be in 1..65535, got \"" + text + "\"");
  return e;
}

Config parse_config(const nlohmann::json& document) {
  Config config;
  Node root(document, "");
  root.expect_object();
  if (auto n = root.member("listeners")) read_listeners(*n, config);
  if (auto n = root.member("downstream")) read_downstream(*n, config.downstream);
  if (auto n = root.member("admin")) read_admin(*n, config);
  // More than 1024 event loops is a typo, not a machine.
  if (auto n = root.member("workers")) config.workers = static_cast<int>(n->as_uint(0, 1024));
  // Past 10 ms the spin outlasts any reply on a LAN: it would only burn the core.
  if (auto n = root.member("busy_poll_us")) config.busy_poll_us = static_cast<std::uint32_t>(n->as_uint(0, 10'000));
  if (auto n = root.member("log")) read_log(*n, config);
  // Zero is allowed: on SIGTERM, 421 to every session at once.
  if (auto n = root.member("drain_grace")) config.drain_grace = n->as_seconds(kMaxTimeoutSeconds, true);
  if (auto n = root.member("user")) config.user = read_account_name(*n);
  if (auto n = root.member("group")) {
    if (config.user.empty()) n->fail("needs \"user\"");
    config.group = read_account_name(*n);
  }
  if (auto n = root.member("smtp")) read_smtp(*n, config.smtp);
  if (auto n = root.member("spool")) read_spool(*n, config.spool);
  if (auto n = root.member("quarantine")) read_quarantine(*n, config.quarantine);
  if (auto n = root.member("verdict")) read_verdict(*n, config.verdict);
  if (auto n = root.member("profiles")) read_profile_list(*n, config.profiles, &read_verdict);
  if (auto n = root.member("recipients")) {
    if (!config.profiles.enabled()) n->fail("needs \"profiles\"");
    read_recipient_rules(*n, config.profiles);
  }
  if (auto n = root.member("split")) read_split(*n, config.profiles.split);
  if (auto n = root.member("profile_lookup")) {
    // Its answers name profiles: without them there is nothing to look up.
    if (!config.profiles.enabled()) n->fail("needs \"profiles\"");
    read_profile_lookup(*n, config.profile_lookup);
  }
  if (auto n = root.member("store")) read_store(*n, config.store);
  if (auto n = root.member("policies")) read_policies(*n, config);
  // After "smtp": the hide_banner built-in shows smtp.hostname.
  read_rewrite(root.member("rewrite"), config.smtp, config.rewrite);
  if (auto n = root.member("tls")) read_tls(*n, config.tls);
  check_tls_references(config);
  read_proxy_protocol(root, config);  // after "listeners": they inherit its proxy_protocol_from
  root.done();
  return config;
}

namespace {

// nlohmann's parse_error gives `byte`, the 1-based offset of the last character read. Line and
// column are computed from the text so the message does not depend on the library's wording.
std::string syntax_error_message(const std::string& path, const std::string& text,
                                 const nlohmann::json::parse_error& e) {
  std::size_t offset = e.byte == 0 ? 0 : std::min<std::size_t>(e.byte - 1, text.size());
  std::size_t line = 1, line_start = 0;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  std::size_t column = offset - line_start + 1;
  // Drop nlohmann's "[json.exception.parse_error.101] parse error at line L, column C: " prefix.
  std::string detail = e.what();
  auto at = detail.find("parse error");
  if (at != std::string::npos) {
    auto colon = detail.find(": ", at);
    if (colon != std::string::npos) detail = detail.substr(colon + 2);
  }
  return path + ": line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + detail;
}

// JSON allows a key twice and nlohmann keeps the last one: a config with "port" twice would
// silently use the second. This parser callback refuses duplicates, naming the key's path (the
// message starts with the path, as every validation error does).
class DuplicateKeyCheck {
 public:
  bool operator()(int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    (void)depth;
    switch (event) {
      case E::object_start:
      case E::array_start:
        begin_element();
        frames_.push_back(Frame{event == E::array_start, 0, {}, {}});
        break;
      case E::object_end:
      case E::array_end:
        frames_.pop_back();
        break;
      case E::key: {
        auto& f = frames_.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second) throw ConfigError(path() + ": duplicate key");
        break;
      }
      case E::value:
        begin_element();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array;
    std::size_t next_index;  // arrays: index of the next element + 1 once it began
    std::string key;         // objects: the key being read
    std::set<std::string> keys;
  };
  void begin_element() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().next_index;
  }
  std::string path() const {
    std::string p;
    for (const auto& f : frames_) {  // appended piece by piece: see lib/http/header_value.cc
      if (f.array) {
        p += '[';
        p += std::to_string(f.next_index - 1);
        p += ']';
      } else {
        if (!p.empty()) p += '.';
        p += f.key;
      }
    }
    return p;
  }
  std::vector<Frame> frames_;
};

}  // namespace

Config load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": read error");
  std::string text = buffer.str();

  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text, DuplicateKeyCheck());
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError(syntax_error_message(path, text, e));
  }
  Config config = parse_config(document);
  config.source = path;
  return config;
}

}  // namespace dotgate::config
