// lib/smtp/received_header.cc — see received_header.h. The field is built as segments (each
// begins a line, as Postfix lays its Received out) of words; a segment too long for one line is
// folded between its words.
#include "lib/smtp/received_header.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

namespace dotgate::smtp {

namespace {

// RFC 5322 2.1.1: a line SHOULD stay within 78 characters (998 is the hard limit, which the
// longest word here, a 255-character HELO name, cannot reach).
constexpr std::size_t kFoldAt = 78;
// RFC 5321 4.5.3.1.2: a domain is at most 255 octets; a longer HELO argument is cut there.
constexpr std::size_t kMaxHelo = 255;

// The client's words go inside a structured field: nothing that could close or open a comment,
// escape, end the clause list, fold or end the line. '?' is what Postfix's printable() puts there.
std::string sanitize_helo(std::string_view helo) {
  std::string out;
  out.reserve(std::min(helo.size(), kMaxHelo));
  for (char c : helo.substr(0, kMaxHelo)) {
    bool bad = c < '!' || c > '~' || c == '(' || c == ')' || c == '\\' || c == ';';
    out += bad ? '?' : c;
  }
  return out;
}

// RFC 5321 4.1.3 address literal: "[192.0.2.1]", "[IPv6:2001:db8::1]".
std::string address_literal(std::string_view ip) {
  std::string out = "[";
  if (ip.find(':') != std::string_view::npos) out += "IPv6:";
  out.append(ip).append("]");
  return out;
}

using Segment = std::vector<std::string>;

std::string fold(const std::vector<Segment>& segments) {
  std::string out = "Received:";
  std::size_t line_start = 0;
  bool at_line_start = false;  // right after a fold's TAB: the next word needs no space
  bool first_segment = true;
  for (const Segment& words : segments) {
    if (words.empty()) continue;
    if (!first_segment) {
      out += "\r\n\t";
      line_start = out.size() - 1;  // the TAB is the line's first character
      at_line_start = true;
    }
    first_segment = false;
    for (const std::string& word : words) {
      if (!at_line_start && out.size() - line_start + 1 + word.size() > kFoldAt) {
        out += "\r\n\t";
        line_start = out.size() - 1;
        at_line_start = true;
      }
      if (!at_line_start) out += ' ';
      out += word;
      at_line_start = false;
    }
  }
  out += "\r\n";
  return out;
}

}  // namespace

std::string received_protocol(bool esmtp, bool tls, bool authenticated) {
  if (!esmtp) return "SMTP";
  std::string out = "ESMTP";
  if (tls) out += 'S';
  if (authenticated) out += 'A';
  return out;
}

std::string rfc5322_date(std::int64_t unix_time) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);  // not strftime: %a and %b follow the locale, the RFC's names do not
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday % 7], tm.tm_mday,
                kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string received_header(const ReceivedFacts& f) {
  bool tls = !f.tls_version.empty();
  std::vector<Segment> segments;

  std::string helo = sanitize_helo(f.helo);
  Segment from{"from", helo.empty() ? "unknown" : helo};
  if (!f.client_ip.empty()) from.push_back("(" + address_literal(f.client_ip) + ")");
  segments.push_back(std::move(from));

  if (tls) {
    // Postfix's smtpd_tls_received_header wording, which rspamd and SpamAssassin know.
    segments.push_back({"(using", f.tls_version, "with", "cipher", f.tls_cipher,
                        "(" + std::to_string(f.tls_bits) + "/" + std::to_string(f.tls_alg_bits), "bits))"});
  }

  Segment by{"by", f.by, "(dotgate)", "with", received_protocol(f.esmtp, tls, f.authenticated)};
  if (!f.queue_id.empty()) {
    by.push_back("id");
    by.push_back(f.queue_id);
  }
  // No "for <recipient>": with several recipients it would name a Bcc to all of them.
  segments.push_back(std::move(by));
  if (tls && !f.tls_cipher_iana.empty()) segments.push_back({"tls", f.tls_cipher_iana});  // RFC 8314 4.3
  segments.back().back() += ';';

  segments.push_back({rfc5322_date(f.unix_time)});  // one word: a date is never folded apart
  return fold(segments);
}

}  // namespace dotgate::smtp
