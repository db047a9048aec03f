// Unit tests for lib/smtp/received_header: the trace field dotgate writes (smtp.trace_header).
// The exact layout for TLS and plain sessions, the RFC 3848 keywords, the date, and what a
// hostile HELO can and cannot do: every line within 78 characters where the words allow (998
// always), CRLF only, nothing that needs dot-stuffing or ends the header section, and the field
// goes through the DataStream (what the MTA's reader is) unchanged.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lib/smtp/data_stream.h"
#include "lib/smtp/received_header.h"

using dotgate::smtp::DataStream;
using dotgate::smtp::received_header;
using dotgate::smtp::received_protocol;
using dotgate::smtp::ReceivedFacts;
using dotgate::smtp::rfc5322_date;

namespace {

constexpr std::int64_t kWhen = 1796418887;  // Fri, 04 Dec 2026 21:14:47 UTC

ReceivedFacts tls_facts() {
  ReceivedFacts f;
  f.helo = "client.example";
  f.client_ip = "192.0.2.1";
  f.by = "mx.example.net";
  f.queue_id = "3F2A9C01B7";
  f.tls_version = "TLSv1.3";
  f.tls_cipher = "TLS_AES_256_GCM_SHA384";
  f.tls_cipher_iana = "TLS_AES_256_GCM_SHA384";
  f.tls_bits = 256;
  f.tls_alg_bits = 256;
  f.unix_time = kWhen;
  return f;
}

std::vector<std::string> lines_of(const std::string& field) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < field.size()) {
    std::size_t crlf = field.find("\r\n", at);
    REQUIRE(crlf != std::string::npos);  // every line ends in CRLF
    out.push_back(field.substr(at, crlf - at));
    at = crlf + 2;
  }
  return out;
}

// What every field must be, whatever went in.
void check_wire_safe(const std::string& field, std::size_t soft_limit = 78) {
  REQUIRE(field.size() >= 2);
  CHECK(field.substr(field.size() - 2) == "\r\n");
  auto lines = lines_of(field);
  REQUIRE(!lines.empty());
  CHECK(lines[0].rfind("Received: ", 0) == 0);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    CAPTURE(l);
    CHECK(!l.empty());
    CHECK(l.size() <= 998);
    CHECK(l.size() <= soft_limit);
    CHECK(l.front() != '.');
    if (i > 0) CHECK(l.front() == '\t');  // a continuation line
    for (char c : l) CHECK(((c >= ' ' && c <= '~') || c == '\t'));
  }
  // Through the DataStream as a client's body would go: unchanged, and the message ends where
  // the dot is, not earlier.
  DataStream stream;
  std::string out;
  std::string input = field + ".\r\n";
  auto p = stream.feed(input, out);
  CHECK(p.ended);
  CHECK(p.consumed == input.size());
  CHECK(out == field);
}

}  // namespace

TEST_CASE("received: a TLS session, laid out as Postfix does, with RFC 8314's tls clause") {
  std::string field = received_header(tls_facts());
  CHECK(field ==
        "Received: from client.example ([192.0.2.1])\r\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
        "\tby mx.example.net (dotgate) with ESMTPS id 3F2A9C01B7\r\n"
        "\ttls TLS_AES_256_GCM_SHA384;\r\n"
        "\tFri, 04 Dec 2026 21:14:47 +0000\r\n");
  check_wire_safe(field);
}

TEST_CASE("received: TLS 1.2 names the OpenSSL cipher in the comment and the IANA one in the clause") {
  ReceivedFacts f = tls_facts();
  f.tls_version = "TLSv1.2";
  f.tls_cipher = "ECDHE-RSA-AES128-GCM-SHA256";
  f.tls_cipher_iana = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256";
  f.tls_bits = f.tls_alg_bits = 128;
  std::string field = received_header(f);
  CHECK(field.find("\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))\r\n") !=
        std::string::npos);
  CHECK(field.find("\ttls TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256;\r\n") != std::string::npos);
  check_wire_safe(field);
  f.tls_cipher_iana.clear();  // not known: no clause, the ';' ends the by-line
  field = received_header(f);
  CHECK(field.find("tls TLS_") == std::string::npos);
  CHECK(field.find("with ESMTPS id 3F2A9C01B7;\r\n") != std::string::npos);
  check_wire_safe(field);
}

TEST_CASE("received: a plain session has no TLS comment and says ESMTP or SMTP") {
  ReceivedFacts f = tls_facts();
  f.tls_version.clear();
  std::string field = received_header(f);
  CHECK(field ==
        "Received: from client.example ([192.0.2.1])\r\n"
        "\tby mx.example.net (dotgate) with ESMTP id 3F2A9C01B7;\r\n"
        "\tFri, 04 Dec 2026 21:14:47 +0000\r\n");
  check_wire_safe(field);
  f.esmtp = false;
  CHECK(received_header(f).find("with SMTP id") != std::string::npos);
}

TEST_CASE("received: RFC 3848 protocol keywords") {
  CHECK(received_protocol(true, false, false) == "ESMTP");
  CHECK(received_protocol(true, true, false) == "ESMTPS");
  CHECK(received_protocol(true, false, true) == "ESMTPA");
  CHECK(received_protocol(true, true, true) == "ESMTPSA");
  CHECK(received_protocol(false, true, true) == "SMTP");  // RFC 3848 is for ESMTP only
  ReceivedFacts f = tls_facts();
  f.authenticated = true;
  CHECK(received_header(f).find("with ESMTPSA id") != std::string::npos);
}

TEST_CASE("received: IPv6 is an IPv6: address literal; no address, no TCP-info; no HELO is unknown") {
  ReceivedFacts f = tls_facts();
  f.client_ip = "2001:db8::1";
  CHECK(received_header(f).rfind("Received: from client.example ([IPv6:2001:db8::1])\r\n", 0) == 0);
  f.client_ip.clear();
  f.helo.clear();
  f.queue_id.clear();
  std::string field = received_header(f);
  CHECK(field.rfind("Received: from unknown\r\n", 0) == 0);
  CHECK(field.find("with ESMTPS\r\n") != std::string::npos);  // no id clause
  check_wire_safe(field);
}

TEST_CASE("received: the date is RFC 5322 in UTC, locale-free") {
  CHECK(rfc5322_date(0) == "Thu, 01 Jan 1970 00:00:00 +0000");
  CHECK(rfc5322_date(kWhen) == "Fri, 04 Dec 2026 21:14:47 +0000");
  CHECK(rfc5322_date(951782400) == "Tue, 29 Feb 2000 00:00:00 +0000");
}

TEST_CASE("received: a hostile HELO cannot open, close or end anything") {
  ReceivedFacts f = tls_facts();
  f.helo = std::string("evil) by x; (\\\r\n.\r\nMAIL FROM:<a>\0\x7f\x80", 35);
  std::string field = received_header(f);
  check_wire_safe(field);
  auto lines = lines_of(field);
  // One word: every forbidden byte became '?'.
  CHECK(lines[0] == "Received: from evil??by?x??????.??MAIL?FROM:<a>??? ([192.0.2.1])");
  CHECK(field.find("(dotgate) with ESMTPS") != std::string::npos);
}

TEST_CASE("received: long words fold between words, a 255-character HELO stays under 998") {
  ReceivedFacts f = tls_facts();
  f.helo = std::string(300, 'a');  // cut to the RFC 5321 limit of a domain
  f.by = std::string(60, 'b') + ".example";
  std::string field = received_header(f);
  auto lines = lines_of(field);
  CHECK(lines[0] == "Received: from");
  CHECK(lines[1] == "\t" + std::string(255, 'a'));
  check_wire_safe(field, 998);
  for (const auto& l : lines)
    if (l.find(std::string(255, 'a')) == std::string::npos) CHECK(l.size() <= 78);
  CHECK(field.find("(dotgate) with ESMTPS") != std::string::npos);
}
