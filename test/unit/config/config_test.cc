// test/unit/config/config_test.cc — lib/config: every refusal names its key's path exactly;
// defaults; the shipped example (deploy/dotgate.example.json, found through DOTGATE_SOURCE_ROOT);
// JSON syntax errors with line and column; parse_endpoint / Endpoint::to_string.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "lib/config/config.h"

using dotgate::config::Config;
using dotgate::config::ConfigError;
using dotgate::config::Endpoint;
using dotgate::config::load_config_file;
using dotgate::config::parse_config;
using dotgate::config::parse_endpoint;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_config(json::parse(text));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// A file in the temp directory, removed at scope exit.
struct TempFile {
  explicit TempFile(const std::string& content) {
    std::string pattern = (std::filesystem::temp_directory_path() / "dotgate-config-XXXXXX").string();
    int fd = mkstemp(pattern.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    path = pattern;
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempFile() { std::filesystem::remove(path); }
  std::string path;
};

std::string load_error(const std::string& path) {
  try {
    load_config_file(path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("config: each refusal starts with the offending key's path") {
  struct Case {
    const char* json;
    const char* error;
  };
  const Case cases[] = {
      {R"([])", "(top level): expected object"},
      {R"({"bogus": 1})", "bogus: unknown key"},
      // listeners
      {R"({"listeners": {}})", "listeners: expected array"},
      {R"({"listeners": []})", "listeners: must not be empty"},
      {R"({"listeners": [5]})", "listeners[0]: expected object"},
      {R"({"listeners": [{"address": "127.0.0.1", "port": "2525"}]})", "listeners[0].port: expected integer"},
      {R"({"listeners": [{"address": "127.0.0.1", "port": 25.5}]})", "listeners[0].port: expected integer"},
      {R"({"listeners": [{"address": "::1"}]})", "listeners[0].port: missing required key"},
      {R"({"listeners": [{"port": 25}, {"port": 0}]})", "listeners[1].port: expected integer in 1..65535"},
      {R"({"listeners": [{"port": 25, "addr": "::1"}]})", "listeners[0].addr: unknown key"},
      {R"({"listeners": [{"address": "localhost", "port": 25}]})",
       "listeners[0].address: expected IPv4 or IPv6 address literal"},
      {R"({"listeners": [{"address": 127, "port": 25}]})", "listeners[0].address: expected string"},
      {R"({"listeners": [{"port": 25}, {"address": "127.0.0.1", "port": 25}]})",
       "listeners[1]: duplicate of listeners[0]"},
      {R"({"listeners": [{"address": "::1", "port": 25}, {"address": "0::1", "port": 25}]})",
       "listeners[1]: duplicate of listeners[0]"},
      // downstream
      {R"({"downstream": []})", "downstream: expected object"},
      {R"({"downstream": {"port": 70000}})", "downstream.port: expected integer in 1..65535"},
      {R"({"downstream": {"port": -1}})", "downstream.port: expected integer in 1..65535"},
      {R"({"downstream": {"address": "1.2.3"}})", "downstream.address: expected IPv4 or IPv6 address literal"},
      {R"({"downstream": {"connect_timeout": 0}})",
       "downstream.connect_timeout: expected number of seconds > 0 and <= 86400"},
      {R"({"downstream": {"reply_timeout": "300"}})",
       "downstream.reply_timeout: expected number of seconds > 0 and <= 86400"},
      {R"({"downstream": {"data_end_timeout": 86401}})",
       "downstream.data_end_timeout: expected number of seconds > 0 and <= 86400"},
      {R"({"downstream": {"connect_timeout": 0.0001}})",
       "downstream.connect_timeout: expected number of seconds > 0 and <= 86400"},
      {R"({"downstream": {"timeout": 5}})", "downstream.timeout: unknown key"},
      {R"({"downstream": {"pool": 2}})", "downstream.pool: expected object"},
      {R"({"downstream": {"pool": {"size": 65}}})", "downstream.pool.size: expected integer in 0..64"},
      {R"({"downstream": {"pool": {"max_idle": 0}}})",
       "downstream.pool.max_idle: expected number of seconds > 0 and <= 290"},
      {R"({"downstream": {"pool": {"max_idle": 300}}})",
       "downstream.pool.max_idle: expected number of seconds > 0 and <= 290"},
      {R"({"downstream": {"pool": {"idle": 5}}})", "downstream.pool.idle: unknown key"},
      {R"({"downstream": {"pool": {"max_sessions": 0}}})", "downstream.pool.max_sessions: expected integer in 1..1000"},
      {R"({"downstream": {"pool": {"ehlo": "a b"}}})",
       "downstream.pool.ehlo: expected a domain name (letters, digits, '-', '.') or [address]"},
      // admin
      {R"({"admin": {"enabled": "yes"}})", "admin.enabled: expected boolean"},
      {R"({"admin": {"port": 65536}})", "admin.port: expected integer in 1..65535"},
      {R"({"admin": {"path": "/"}})", "admin.path: unknown key"},
      // workers, log, drain_grace
      {R"({"workers": -1})", "workers: expected integer in 0..1024"},
      {R"({"workers": 1025})", "workers: expected integer in 0..1024"},
      {R"({"workers": 1.5})", "workers: expected integer"},
      {R"({"busy_poll_us": -1})", "busy_poll_us: expected integer in 0..10000"},
      {R"({"busy_poll_us": 10001})", "busy_poll_us: expected integer in 0..10000"},
      {R"({"busy_poll_us": "100"})", "busy_poll_us: expected integer"},
      {R"({"log": "json"})", "log: expected object"},
      {R"({"log": {"format": "xml"}})", "log.format: expected one of text, json"},
      {R"({"log": {"level": "verbose"}})", "log.level: expected one of trace, debug, info, warn, error, critical, off"},
      {R"({"log": {"level": 3}})", "log.level: expected one of trace, debug, info, warn, error, critical, off"},
      {R"({"log": {"colour": true}})", "log.colour: unknown key"},
      {R"({"drain_grace": -1})", "drain_grace: expected number of seconds >= 0 and <= 86400"},
      {R"({"drain_grace": null})", "drain_grace: expected number of seconds >= 0 and <= 86400"},
      // user, group
      {R"({"user": ""})", "user: expected a user or group name (letters, digits, '_', '-', '.')"},
      {R"({"user": "mail:x"})", "user: expected a user or group name (letters, digits, '_', '-', '.')"},
      {R"({"user": "-x"})", "user: expected a user or group name (letters, digits, '_', '-', '.')"},
      {R"({"user": "no body"})", "user: expected a user or group name (letters, digits, '_', '-', '.')"},
      {R"({"user": 65534})", "user: expected string"},
      {R"({"group": "nogroup"})", "group: needs \"user\""},
      {R"({"user": "nobody", "group": "a\nb"})", "group: expected a user or group name (letters, digits, '_', '-', '.')"},
      // smtp
      {R"({"smtp": 1})", "smtp: expected object"},
      {R"({"smtp": {"max_line_lenght": 1000}})", "smtp.max_line_lenght: unknown key"},
      {R"({"smtp": {"hostname": "mx example"}})",
       "smtp.hostname: expected a domain name (letters, digits, '-', '.') or [address]"},
      {R"({"smtp": {"hostname": "mx\r\n250 injected"}})",
       "smtp.hostname: expected a domain name (letters, digits, '-', '.') or [address]"},
      {R"({"smtp": {"hostname": ""}})", "smtp.hostname: expected a domain name (letters, digits, '-', '.') or [address]"},
      {R"({"smtp": {"command_timeout": 0}})", "smtp.command_timeout: expected number of seconds > 0 and <= 86400"},
      {R"({"smtp": {"data_timeout": true}})", "smtp.data_timeout: expected number of seconds > 0 and <= 86400"},
      {R"({"smtp": {"max_line_length": 79}})", "smtp.max_line_length: expected integer in 80..1048576"},
      {R"({"smtp": {"max_line_length": 1048577}})", "smtp.max_line_length: expected integer in 80..1048576"},
      {R"({"smtp": {"bare_line_ending": "crlf"}})", "smtp.bare_line_ending: expected one of normalize, reject"},
      {R"({"smtp": {"max_recipients": 0}})", "smtp.max_recipients: expected integer in 1..100000"},
      {R"({"smtp": {"max_message_size": 0}})", "smtp.max_message_size: expected integer in 1..1099511627776"},
      {R"({"smtp": {"max_message_size": 18446744073709551615}})",
       "smtp.max_message_size: expected integer in 1..1099511627776"},
      {R"({"smtp": {"max_connections": 0}})", "smtp.max_connections: expected integer in 1..1000000"},
      {R"({"smtp": {"max_commands": 0}})", "smtp.max_commands: expected integer in 1..100000000"},
      {R"({"smtp": {"max_errors": 0}})", "smtp.max_errors: expected integer in 1..100000"},
      {R"({"smtp": {"vrfy": 250}})", "smtp.vrfy: expected one of 252, 502"},
      {R"({"smtp": {"vrfy": "252"}})", "smtp.vrfy: expected one of 252, 502"},
      {R"({"smtp": {"vrfy": 100000}})", "smtp.vrfy: expected one of 252, 502"},
      {R"({"smtp": {"vrfy": 252.0}})", "smtp.vrfy: expected one of 252, 502"},
      {R"({"smtp": {"auth_passthrough": 1}})", "smtp.auth_passthrough: expected boolean"},
      {R"({"smtp": {"trace_header": "on"}})", "smtp.trace_header: expected one of off, tls, always"},
      {R"({"smtp": {"trace_header": true}})", "smtp.trace_header: expected one of off, tls, always"},
      {R"({"smtp": {"xforward_from": "127.0.0.1"}})", "smtp.xforward_from: expected array"},
      {R"({"smtp": {"xforward_from": ["127.0.0.1", 5]}})", "smtp.xforward_from[1]: expected string"},
      {R"({"smtp": {"xforward_from": ["localhost"]}})",
       "smtp.xforward_from[0]: expected a network like 192.0.2.0/24 or 2001:db8::/32"},
      {R"({"smtp": {"xforward_from": ["10.0.0.0/33"]}})", "smtp.xforward_from[0]: prefix length over 32"},
      // spool
      {R"({"spool": {"memory_threshold": -1}})", "spool.memory_threshold: expected integer in 0..1073741824"},
      {R"({"spool": {"directory": "tmp"}})", "spool.directory: expected absolute path"},
      {R"({"spool": {"directory": ""}})", "spool.directory: expected absolute path"},
      {R"({"spool": {"dir": "/tmp"}})", "spool.dir: unknown key"},
      // quarantine
      {R"({"quarantine": []})", "quarantine: expected object"},
      {R"({"quarantine": {"directory": "q"}})", "quarantine.directory: expected absolute path"},
      {R"({"quarantine": {"directory": ""}})", "quarantine.directory: expected absolute path"},
      {R"({"quarantine": {"directory": 5}})", "quarantine.directory: expected string"},
      {R"({"quarantine": {"max_bytes": 1000}})", "quarantine.max_bytes: expected integer in 1048576..1125899906842624"},
      {R"({"quarantine": {"max_bytes": "1G"}})", "quarantine.max_bytes: expected integer"},
      {R"({"quarantine": {"dir": "/q"}})", "quarantine.dir: unknown key"},
      // policies: shape only; the entries' own keys are the registry's business
      {R"({"policies": {}})", "policies: expected array"},
      {R"({"policies": [1]})", "policies[0]: expected object"},
      {R"({"policies": [{"type": "limits"}, {"max": 1}]})", "policies[1].type: missing required key"},
      {R"({"policies": [{"type": 5}]})", "policies[0].type: expected string"},
      {R"({"policies": [{"type": ""}]})", "policies[0].type: must not be empty"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.json));
    CHECK(error_of(c.json) == std::string(c.error));
  }
}

TEST_CASE("config: an empty object gives the defaults of config.h") {
  Config c = parse_config(json::object());
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].to_string() == "127.0.0.1:2525");
  CHECK(c.downstream.endpoint.to_string() == "127.0.0.1:10026");
  CHECK(c.downstream.connect_timeout == 30s);
  CHECK(c.downstream.reply_timeout == 300s);
  CHECK(c.downstream.data_end_timeout == 600s);
  CHECK(c.downstream.pool_size == 0);
  CHECK(c.downstream.pool_max_idle == 60s);
  CHECK(c.downstream.pool_ehlo.empty());
  CHECK(c.downstream.pool_max_sessions == 1);
  CHECK(c.admin.to_string() == "127.0.0.1:8025");
  CHECK(c.admin_enabled);
  CHECK(c.workers == 0);
  CHECK(c.busy_poll_us == 0);
  CHECK(c.log_format == dotgate::config::LogFormat::Text);
  CHECK(c.log_level == "info");
  CHECK(c.drain_grace == 30s);
  CHECK(c.smtp.hostname == "localhost");
  CHECK(c.smtp.command_timeout == 300s);
  CHECK(c.smtp.data_timeout == 180s);
  CHECK(c.smtp.max_line_length == 1000);
  CHECK(c.smtp.bare_line_ending == dotgate::smtp::BareLineEnding::Normalize);
  CHECK(c.smtp.max_recipients == 100);
  CHECK(c.smtp.max_message_size == 52428800);
  CHECK(c.smtp.max_connections == 1000);
  CHECK(c.smtp.max_commands == 10000);
  CHECK(c.smtp.max_errors == 20);
  CHECK(c.smtp.vrfy == dotgate::config::VrfyMode::Reply252);
  CHECK_FALSE(c.smtp.auth_passthrough);
  CHECK(c.smtp.trace_header == dotgate::config::TraceHeader::Tls);
  CHECK(c.smtp.xforward_from.empty());  // nobody may send XFORWARD
  CHECK_FALSE(c.smtp.xforward_from.contains("127.0.0.1"));
  CHECK(c.spool.memory_threshold == 262144);
  CHECK(c.spool.directory == "/tmp");
  CHECK_FALSE(c.quarantine.enabled);
  CHECK(c.quarantine.max_bytes == 1073741824);
  CHECK(c.policies == json::array());
}

TEST_CASE("config: every key set to a non-default value") {
  Config c = parse_config(json::parse(R"({
    "listeners": [{"address": "0.0.0.0", "port": 25}, {"address": "::", "port": 25}, {"port": 587}],
    "downstream": {"address": "::1", "port": 10025, "connect_timeout": 1.5, "reply_timeout": 60,
                   "data_end_timeout": 0.25, "pool": {"size": 3, "max_idle": 45.5, "ehlo": "mx.example", "max_sessions": 100}},
    "admin": {"address": "::", "port": 9000, "enabled": false},
    "workers": 4,
    "busy_poll_us": 150,
    "log": {"format": "json", "level": "debug"},
    "drain_grace": 0,
    "smtp": {"hostname": "mx1.example.org", "command_timeout": 10, "data_timeout": 20,
             "max_line_length": 80, "bare_line_ending": "reject", "max_recipients": 5,
             "max_message_size": 1024, "max_connections": 2, "max_commands": 50, "max_errors": 3,
             "vrfy": 502, "auth_passthrough": true, "trace_header": "always",
             "xforward_from": ["127.0.0.1", "2001:db8::/32"]},
    "spool": {"memory_threshold": 0, "directory": "/var/spool/dotgate"},
    "quarantine": {"directory": "/var/spool/dotgate/quarantine", "max_bytes": 2097152},
    "policies": [{"type": "limits", "anything": [1, 2]}, {"type": "greylist"}]
  })"));
  REQUIRE(c.listeners.size() == 3);
  CHECK(c.listeners[0].to_string() == "0.0.0.0:25");
  CHECK(c.listeners[1].to_string() == "[::]:25");
  CHECK(c.listeners[2].to_string() == "127.0.0.1:587");
  CHECK(c.downstream.endpoint.to_string() == "[::1]:10025");
  CHECK(c.downstream.connect_timeout == 1500ms);
  CHECK(c.downstream.reply_timeout == 60s);
  CHECK(c.downstream.data_end_timeout == 250ms);
  CHECK(c.downstream.pool_size == 3);
  CHECK(c.downstream.pool_max_idle == 45500ms);
  CHECK(c.downstream.pool_ehlo == "mx.example");
  CHECK(c.downstream.pool_max_sessions == 100);
  CHECK(c.admin.to_string() == "[::]:9000");
  CHECK_FALSE(c.admin_enabled);
  CHECK(c.workers == 4);
  CHECK(c.busy_poll_us == 150);
  CHECK(c.log_format == dotgate::config::LogFormat::Json);
  CHECK(c.log_level == "debug");
  CHECK(c.drain_grace == 0s);
  CHECK(c.smtp.hostname == "mx1.example.org");
  CHECK(c.smtp.command_timeout == 10s);
  CHECK(c.smtp.data_timeout == 20s);
  CHECK(c.smtp.max_line_length == 80);
  CHECK(c.smtp.bare_line_ending == dotgate::smtp::BareLineEnding::Reject);
  CHECK(c.smtp.max_recipients == 5);
  CHECK(c.smtp.max_message_size == 1024);
  CHECK(c.smtp.max_connections == 2);
  CHECK(c.smtp.max_commands == 50);
  CHECK(c.smtp.max_errors == 3);
  CHECK(c.smtp.vrfy == dotgate::config::VrfyMode::Reply502);
  CHECK(c.smtp.auth_passthrough);
  CHECK(c.smtp.trace_header == dotgate::config::TraceHeader::Always);
  CHECK(c.smtp.xforward_from.contains("127.0.0.1"));
  CHECK(c.smtp.xforward_from.contains("::ffff:127.0.0.1"));
  CHECK(c.smtp.xforward_from.contains("2001:db8::25"));
  CHECK_FALSE(c.smtp.xforward_from.contains("127.0.0.2"));
  CHECK_FALSE(c.smtp.xforward_from.contains("2001:db9::1"));
  CHECK(c.spool.memory_threshold == 0);
  CHECK(c.spool.directory == "/var/spool/dotgate");
  CHECK(c.quarantine.enabled);
  CHECK(c.quarantine.directory == "/var/spool/dotgate/quarantine");
  CHECK(c.quarantine.max_bytes == 2097152);
  REQUIRE(c.policies.size() == 2);
  CHECK(c.policies[0]["anything"] == json::array({1, 2}));  // kept raw for the registry
  CHECK(c.policies[1]["type"] == "greylist");
}

TEST_CASE("config: quarantine with a directory only is enabled with the default cap") {
  Config c = parse_config(json::parse(R"({"quarantine": {"directory": "/q"}})"));
  CHECK(c.quarantine.enabled);
  CHECK(c.quarantine.directory == "/q");
  CHECK(c.quarantine.max_bytes == 1073741824);
  // A cap without a directory keeps it off.
  CHECK_FALSE(parse_config(json::parse(R"({"quarantine": {"max_bytes": 1048576}})")).quarantine.enabled);
}

TEST_CASE("config: address literal hostname is accepted") {
  CHECK(parse_config(json::parse(R"({"smtp": {"hostname": "[192.0.2.1]"}})")).smtp.hostname == "[192.0.2.1]");
  CHECK(parse_config(json::parse(R"({"smtp": {"hostname": "[IPv6:2001:db8::1]"}})")).smtp.hostname ==
        "[IPv6:2001:db8::1]");
}

TEST_CASE("config: the shipped example loads, with the values it documents") {
  const char* root = std::getenv("DOTGATE_SOURCE_ROOT");
  REQUIRE_MESSAGE(root != nullptr, "DOTGATE_SOURCE_ROOT must point at the source tree");
  std::string path = std::string(root) + "/deploy/dotgate.example.json";
  Config c = load_config_file(path);
  CHECK(c.source == path);
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].to_string() == "127.0.0.1:2525");
  CHECK(c.downstream.endpoint.to_string() == "127.0.0.1:2526");
  CHECK(c.admin.to_string() == "127.0.0.1:8025");
  // The example policies, with the paths the Docker image installs (deploy/Dockerfile; the
  // quickstart points them at deploy/examples/).
  REQUIRE(c.policies.size() == 3);
  CHECK(c.policies[0] == json::parse(R"({"type": "limits"})"));
  CHECK(c.policies[1]["type"] == "keywords");
  CHECK(c.policies[1]["lists"][0]["path"] == "/etc/dotgate/keywords.txt");
  CHECK(c.policies[2]["type"] == "script");
  CHECK(c.policies[2]["path"] == "/etc/dotgate/filter.sh");
  // The recommended pool (README, "Which speed settings are defaults"): not the default, which
  // holds no MTA process; one client per MTA connection, as the default.
  CHECK(c.downstream.pool_size == 2);

  // Apart from those, every value is the default: the example documents the defaults.
  Config d = parse_config(json::object());
  CHECK(d.downstream.pool_size == 0);
  CHECK(c.downstream.pool_max_idle == d.downstream.pool_max_idle);
  CHECK(c.downstream.pool_max_sessions == d.downstream.pool_max_sessions);
  CHECK(c.busy_poll_us == d.busy_poll_us);
  CHECK(c.downstream.connect_timeout == d.downstream.connect_timeout);
  CHECK(c.downstream.reply_timeout == d.downstream.reply_timeout);
  CHECK(c.downstream.data_end_timeout == d.downstream.data_end_timeout);
  CHECK(c.admin_enabled == d.admin_enabled);
  CHECK(c.workers == d.workers);
  CHECK(c.log_format == d.log_format);
  CHECK(c.log_level == d.log_level);
  CHECK(c.drain_grace == d.drain_grace);
  CHECK(c.smtp.hostname == d.smtp.hostname);
  CHECK(c.smtp.command_timeout == d.smtp.command_timeout);
  CHECK(c.smtp.data_timeout == d.smtp.data_timeout);
  CHECK(c.smtp.max_line_length == d.smtp.max_line_length);
  CHECK(c.smtp.bare_line_ending == d.smtp.bare_line_ending);
  CHECK(c.smtp.max_recipients == d.smtp.max_recipients);
  CHECK(c.smtp.max_message_size == d.smtp.max_message_size);
  CHECK(c.smtp.max_connections == d.smtp.max_connections);
  CHECK(c.smtp.max_commands == d.smtp.max_commands);
  CHECK(c.smtp.max_errors == d.smtp.max_errors);
  CHECK(c.smtp.vrfy == d.smtp.vrfy);
  CHECK(c.smtp.auth_passthrough == d.smtp.auth_passthrough);
  CHECK(c.spool.memory_threshold == d.spool.memory_threshold);
  CHECK(c.spool.directory == d.spool.directory);

  // And it names every key parse_config knows: the example is the schema's reference.
  std::ifstream in(path);
  json doc = json::parse(in);
  for (const char* key : {"listeners", "downstream", "admin", "workers", "log", "drain_grace", "smtp", "spool",
                          "policies"})
    CHECK_MESSAGE(doc.contains(key), key);
  CHECK(doc["smtp"].size() == 12);
  CHECK(doc["downstream"].size() == 6);
}

TEST_CASE("config: JSON syntax errors give file, line and column") {
  TempFile f("{\n  \"workers\": 1,\n  }\n");
  CHECK(load_error(f.path) ==
        f.path + ": line 3, column 3: syntax error while parsing object key - unexpected '}'; expected string literal");

  TempFile eof("{\"smtp\": {");
  CHECK(load_error(eof.path).rfind(eof.path + ": line 1, column 11: ", 0) == 0);

  TempFile trailing("{}\n\n  x");
  CHECK(load_error(trailing.path).rfind(trailing.path + ": line 3, column 3: ", 0) == 0);

  TempFile empty("");
  CHECK(load_error(empty.path).rfind(empty.path + ": line 1, column 1: ", 0) == 0);
}

TEST_CASE("config: load_config_file refusals") {
  CHECK(load_error("/nonexistent/dotgate.json") == "/nonexistent/dotgate.json: cannot open: No such file or directory");

  // Validation errors from a file read the same as from parse_config: the path first.
  TempFile bad(R"({"listeners": [{"address": "127.0.0.1", "port": "x"}]})");
  CHECK(load_error(bad.path) == "listeners[0].port: expected integer");

  // A key given twice would silently take the last value: refused, with its path.
  TempFile dup(R"({"smtp": {"vrfy": 252, "max_errors": 1, "vrfy": 502}})");
  CHECK(load_error(dup.path) == "smtp.vrfy: duplicate key");
  TempFile dup_in_array(R"({"listeners": [{"port": 1}, {"port": 2, "port": 3}]})");
  CHECK(load_error(dup_in_array.path) == "listeners[1].port: duplicate key");
  TempFile dup_nested(R"({"policies": [[], {"type": "a"}, {"type": "b", "x": {"y": 1, "y": 2}}]})");
  CHECK(load_error(dup_nested.path) == "policies[2].x.y: duplicate key");
  // The same key in sibling objects is fine.
  TempFile siblings(R"({"listeners": [{"port": 1}, {"port": 2}], "admin": {"port": 3}})");
  CHECK(load_config_file(siblings.path).listeners.size() == 2);
}

TEST_CASE("config: parse_endpoint and Endpoint::to_string") {
  CHECK(parse_endpoint("127.0.0.1:2525", "--listen").to_string() == "127.0.0.1:2525");
  CHECK(parse_endpoint("[::1]:2525", "--listen").to_string() == "[::1]:2525");
  Endpoint e = parse_endpoint("[2001:db8::25]:25", "--downstream");
  CHECK(e.address == "2001:db8::25");
  CHECK(e.port == 25);
  CHECK(parse_endpoint("0.0.0.0:65535", "--admin").port == 65535);

  for (const char* bad : {"localhost:25", "::1:25", "127.0.0.1", "127.0.0.1:", ":25", "127.0.0.1:0",
                          "127.0.0.1:65536", "127.0.0.1:123456", "[::1]25", "[::1]", "[::1:25", "1.2.3.4:2x",
                          "1.2.3.4:-1", "1.2.3.4:+1", "[127.0.0.1]:25", "", "127.1:25"}) {
    CAPTURE(bad);
    try {
      parse_endpoint(bad, "--listen");
      FAIL("accepted");
    } catch (const ConfigError& err) {
      CHECK(std::string(err.what()).rfind("--listen: ", 0) == 0);
    }
  }
}
