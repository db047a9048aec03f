// test/unit/config/tls_config_test.cc — the TLS keys of the config: `tls`, listeners[].tls and
// require_tls, downstream.starttls and downstream.tls; each refusal names its key's path; the
// defaults leave TLS off everywhere.
#include <doctest/doctest.h>

#include <string>

#include "lib/config/config.h"

using namespace dotgate::config;
using nlohmann::json;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_config(json::parse(text));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

const std::string kTls = R"("tls": {"cert_file": "/etc/dotgate/cert.pem", "key_file": "/etc/dotgate/key.pem"})";

}  // namespace

TEST_CASE("config tls: off by default everywhere") {
  Config c = parse_config(json::object());
  CHECK_FALSE(c.tls.enabled);
  CHECK(c.listeners.at(0).tls == ListenerTls::Off);
  CHECK_FALSE(c.listeners.at(0).require_tls);
  CHECK(c.downstream.starttls == DownstreamStartTls::Off);
  CHECK(c.downstream.tls.ca_file.empty());
  CHECK(c.downstream.tls.on_error == TlsVerifyFailure::Tempfail);
}

TEST_CASE("config tls: every key set") {
  Config c = parse_config(json::parse(R"({
    "tls": {"cert_file": "/etc/dotgate/cert.pem", "key_file": "/etc/dotgate/key.pem",
            "ciphers": "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256",
            "ciphersuites": "TLS_AES_128_GCM_SHA256", "min_version": "1.3"},
    "listeners": [{"port": 25, "tls": "starttls", "require_tls": true},
                  {"port": 465, "tls": "implicit"},
                  {"port": 2525, "tls": "off"}],
    "downstream": {"starttls": "required",
                   "tls": {"ca_file": "/etc/ssl/certs/ca-certificates.crt", "verify_name": "mx1.example.org",
                           "on_error": "accept"}}
  })"));
  CHECK(c.tls.enabled);
  CHECK(c.tls.cert_file == "/etc/dotgate/cert.pem");
  CHECK(c.tls.key_file == "/etc/dotgate/key.pem");
  CHECK(c.tls.ciphers == "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256");
  CHECK(c.tls.ciphersuites == "TLS_AES_128_GCM_SHA256");
  CHECK(c.tls.min_version == TlsVersion::Tls13);
  REQUIRE(c.listeners.size() == 3);
  CHECK(c.listeners[0].tls == ListenerTls::StartTls);
  CHECK(c.listeners[0].require_tls);
  CHECK(c.listeners[1].tls == ListenerTls::Implicit);
  CHECK_FALSE(c.listeners[1].require_tls);
  CHECK(c.listeners[2].tls == ListenerTls::Off);
  CHECK(c.downstream.starttls == DownstreamStartTls::Required);
  CHECK(c.downstream.tls.ca_file == "/etc/ssl/certs/ca-certificates.crt");
  CHECK(c.downstream.tls.verify_name == "mx1.example.org");
  CHECK(c.downstream.tls.on_error == TlsVerifyFailure::Accept);
  // The defaults of what was left out.
  Config d = parse_config(json::parse("{" + kTls + R"(, "downstream": {"starttls": "opportunistic"}})"));
  CHECK(d.tls.min_version == TlsVersion::Tls12);
  CHECK(d.tls.ciphers.empty());
  CHECK(d.downstream.starttls == DownstreamStartTls::Opportunistic);
}

TEST_CASE("config tls: each refusal starts with the offending key's path") {
  CHECK(error_of(R"({"tls": {"key_file": "/k.pem"}})") == "tls.cert_file: missing required key");
  CHECK(error_of(R"({"tls": {"cert_file": "/c.pem"}})") == "tls.key_file: missing required key");
  CHECK(error_of(R"({"tls": {"cert_file": "c.pem", "key_file": "/k.pem"}})") == "tls.cert_file: expected absolute path");
  CHECK(error_of(R"({"tls": {"cert_file": "/c.pem", "key_file": ""}})") == "tls.key_file: expected absolute path");
  CHECK(error_of(R"({"tls": "on"})") == "tls: expected object");
  CHECK(error_of(R"({"tls": {"cert_file": "/c.pem", "key_file": "/k.pem", "min_version": "1.1"}})") ==
        "tls.min_version: expected one of 1.2, 1.3");
  CHECK(error_of(R"({"tls": {"cert_file": "/c.pem", "key_file": "/k.pem", "min_version": 1.2}})") ==
        "tls.min_version: expected one of 1.2, 1.3");
  CHECK(error_of(R"({"tls": {"cert_file": "/c.pem", "key_file": "/k.pem", "ciphers": "HIGH MEDIUM"}})") ==
        "tls.ciphers: expected printable ASCII without spaces (':'-separated names)");
  CHECK(error_of(R"({"tls": {"cert_file": "/c.pem", "key_file": "/k.pem", "ciphersuites": ""}})") ==
        "tls.ciphersuites: expected a cipher string of 1 to 1024 characters");
  CHECK(error_of(R"({"tls": {"cert_file": "/c.pem", "key_file": "/k.pem", "cipher": "HIGH"}})") == "tls.cipher: unknown key");

  CHECK(error_of(R"({"listeners": [{"port": 25, "tls": "starttls"}]})") ==
        "listeners[0].tls: needs the top-level \"tls\" (cert_file, key_file)");
  CHECK(error_of(R"({"listeners": [{"port": 25}, {"port": 465, "tls": "implicit"}]})") ==
        "listeners[1].tls: needs the top-level \"tls\" (cert_file, key_file)");
  CHECK(error_of("{" + kTls + R"(, "listeners": [{"port": 25, "tls": "yes"}]})") ==
        "listeners[0].tls: expected one of off, starttls, implicit");
  CHECK(error_of("{" + kTls + R"(, "listeners": [{"port": 25, "require_tls": true}]})") ==
        "listeners[0].require_tls: needs \"tls\": \"starttls\" or \"implicit\" on this listener");
  CHECK(error_of("{" + kTls + R"(, "listeners": [{"port": 25, "tls": "starttls", "require_tls": "yes"}]})") ==
        "listeners[0].require_tls: expected boolean");

  CHECK(error_of(R"({"downstream": {"starttls": "maybe"}})") ==
        "downstream.starttls: expected one of off, opportunistic, required");
  CHECK(error_of(R"({"downstream": {"tls": {"ca_file": "/ca.pem"}}})") ==
        "downstream.tls: needs downstream.starttls \"opportunistic\" or \"required\"");
  CHECK(error_of(R"({"downstream": {"starttls": "off", "tls": {}}})") ==
        "downstream.tls: needs downstream.starttls \"opportunistic\" or \"required\"");
  CHECK(error_of(R"({"downstream": {"starttls": "required", "tls": {"ca_file": "ca.pem"}}})") ==
        "downstream.tls.ca_file: expected absolute path");
  CHECK(error_of(R"({"downstream": {"starttls": "required", "tls": {"verify_name": "mx.example.org"}}})") ==
        "downstream.tls.verify_name: needs downstream.tls.ca_file");
  CHECK(error_of(R"({"downstream": {"starttls": "required", "tls": {"ca_file": "/ca.pem", "verify_name": "*.example.org"}}})") ==
        "downstream.tls.verify_name: expected a host name (letters, digits, '-', '.')");
  CHECK(error_of(R"({"downstream": {"starttls": "required", "tls": {"ca_file": "/ca.pem", "verify_name": "mx\r\nx"}}})") ==
        "downstream.tls.verify_name: expected a host name (letters, digits, '-', '.')");
  CHECK(error_of(R"({"downstream": {"starttls": "required", "tls": {"on_error": "accept"}}})") ==
        "downstream.tls.on_error: needs downstream.tls.ca_file (nothing is verified without it)");
  CHECK(error_of(R"({"downstream": {"starttls": "required", "tls": {"ca_file": "/ca.pem", "on_error": "reject"}}})") ==
        "downstream.tls.on_error: expected one of tempfail, accept");
  CHECK(error_of(R"({"downstream": {"starttls": "required", "tls": {"ca_file": "/ca.pem", "verify": true}}})") ==
        "downstream.tls.verify: unknown key");
}
