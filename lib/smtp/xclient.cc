// lib/smtp/xclient.cc — xtext, the XCLIENT/XFORWARD command lines dotgate sends, and the
// XFORWARD command it reads.
//
// Written from Postfix's XCLIENT_README and XFORWARD_README and RFC 3461 section 4. Pure; owns
// nothing. The sending side never lets one attribute fail a whole command (a 501 would leave the
// MTA with dotgate's own address as the client): what the MTA would refuse goes as [UNAVAILABLE].
// The reading side is Postfix's smtpd semantics, with the replies it gives.
#include "lib/smtp/xclient.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "lib/smtp/command.h"

namespace dotgate::smtp {
namespace {

// Postfix refuses an attribute value over 255 characters as received ("attribute value too long").
constexpr std::size_t kMaxValue = 255;
// XFORWARD PROTO: "an SMTP or non-SMTP protocol name of up to 64 characters".
constexpr std::size_t kMaxProto = 64;

char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return upper(x) == upper(y); });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool is_unavailable(std::string_view v) { return iequals(v, kUnavailable) || iequals(v, kTempUnavailable); }

// An IP literal's canonical text and family, or 0.
int ip_family(std::string_view text, std::string* canonical = nullptr) {
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buf) return 0;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  unsigned char bytes[16];
  int af = inet_pton(AF_INET, buf, bytes) == 1 ? AF_INET : inet_pton(AF_INET6, buf, bytes) == 1 ? AF_INET6 : 0;
  if (af && canonical) {
    char out[INET6_ADDRSTRLEN];
    *canonical = inet_ntop(af, bytes, out, sizeof out) ? out : buf;
  }
  return af;
}

bool is_port(std::string_view v) {
  if (v.empty() || v.size() > 5 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  return std::stoul(std::string(v)) <= 65535;
}

// Postfix's valid_hostname: labels of letters, digits, '-' and '_', 1..63 long, no '-' at either
// end of a label, 255 in all, and not all digits and dots (that would be an address).
bool is_hostname(std::string_view v) {
  if (v.empty() || v.size() > 255) return false;
  bool letter = false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '.') {
      if (label == 0 || v[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || (label == 0 && c == '-') || ++label > 63) return false;
    if (!(c >= '0' && c <= '9')) letter = true;
  }
  return letter && v.back() != '-';
}

// What a sent attribute becomes on the wire: its value if the MTA will take it, else
// [UNAVAILABLE]. Returns the xtext form.
enum class Check { Any, Hostname, Address, Port, Proto };

std::string wire_value(std::string_view value, Check check) {
  std::string v(value);
  if (!is_unavailable(v)) {
    bool ok = true;
    switch (check) {
      case Check::Any: break;
      case Check::Hostname: ok = is_hostname(v); break;
      case Check::Port: ok = is_port(v); break;
      case Check::Proto: ok = iequals(v, "SMTP") || iequals(v, "ESMTP"); break;
      case Check::Address: {
        int af = ip_family(v);
        ok = af != 0;
        if (af == AF_INET6) v = "IPV6:" + v;
        break;
      }
    }
    if (!ok) v = kUnavailable;
  }
  std::string encoded = xtext_encode(v);
  return encoded.size() > kMaxValue ? std::string(kUnavailable) : encoded;
}

struct Outgoing {
  std::string_view name;
  const std::optional<std::string>* value;
  Check check;
};

std::vector<std::string> build_commands(std::string_view verb, const std::vector<Outgoing>& attrs,
                                        const std::vector<std::string>& announced) {
  std::vector<std::string> lines;
  std::string line(verb);
  for (const auto& a : attrs) {
    if (!a.value->has_value()) continue;
    bool offered = std::any_of(announced.begin(), announced.end(), [&](const std::string& n) { return iequals(n, a.name); });
    if (!offered) continue;
    std::string attribute = std::string(a.name) + "=" + wire_value(**a.value, a.check);
    // With its CRLF a command line is at most kMaxCommandLine octets (RFC 5321 4.5.3.1.4).
    if (line.size() > verb.size() && line.size() + 1 + attribute.size() + 2 > kMaxCommandLine) {
      lines.push_back(line);
      line = verb;
    }
    line += ' ';
    line += attribute;
  }
  if (line.size() > verb.size()) lines.push_back(line);
  return lines;
}

std::string sanitized(std::string_view v) {
  std::string out(v);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return out;
}

XforwardParse refuse(std::string text) {
  XforwardParse p;
  p.error = std::move(text);
  return p;
}

}  // namespace

std::string xtext_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c < '!' || c > '~' || c == '+' || c == '=') {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 0x0F];
    } else {
      out += ch;
    }
  }
  return out;
}

std::optional<std::string> xtext_decode(std::string_view xtext) {
  std::string out;
  out.reserve(xtext.size());
  for (std::size_t i = 0; i < xtext.size(); ++i) {
    auto c = static_cast<unsigned char>(xtext[i]);
    if (c < '!' || c > '~') return std::nullopt;
    if (c != '+') {
      out += xtext[i];
      continue;
    }
    if (i + 2 >= xtext.size()) return std::nullopt;  // needs two more bytes
    int hi = hex_value(xtext[i + 1]), lo = hex_value(xtext[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

void merge_identity(const ClientIdentity& update, ClientIdentity& into) {
  auto take = [](const std::optional<std::string>& from, std::optional<std::string>& to) {
    if (from) to = from;
  };
  take(update.name, into.name);
  take(update.addr, into.addr);
  take(update.port, into.port);
  take(update.proto, into.proto);
  take(update.helo, into.helo);
  take(update.login, into.login);
  take(update.dest_addr, into.dest_addr);
  take(update.dest_port, into.dest_port);
  take(update.ident, into.ident);
  take(update.source, into.source);
}

std::vector<std::string> build_xclient(const ClientIdentity& who, const std::vector<std::string>& announced) {
  return build_commands("XCLIENT",
                        {{"HELO", &who.helo, Check::Any},
                         {"PROTO", &who.proto, Check::Proto},
                         {"LOGIN", &who.login, Check::Any},
                         {"DESTADDR", &who.dest_addr, Check::Address},
                         {"DESTPORT", &who.dest_port, Check::Port},
                         {"PORT", &who.port, Check::Port},
                         {"NAME", &who.name, Check::Hostname},
                         {"ADDR", &who.addr, Check::Address}},
                        announced);
}

std::vector<std::string> build_xforward(const ClientIdentity& who, const std::vector<std::string>& announced) {
  return build_commands("XFORWARD",
                        {{"NAME", &who.name, Check::Any},
                         {"ADDR", &who.addr, Check::Address},
                         {"PORT", &who.port, Check::Port},
                         {"HELO", &who.helo, Check::Any},
                         {"IDENT", &who.ident, Check::Any},
                         {"PROTO", &who.proto, Check::Any},
                         {"SOURCE", &who.source, Check::Any}},
                        announced);
}

XforwardParse parse_xforward(std::string_view arguments) {
  XforwardParse result;
  bool any = false;
  while (!arguments.empty()) {
    while (!arguments.empty() && arguments.front() == ' ') arguments.remove_prefix(1);
    if (arguments.empty()) break;
    std::size_t sp = arguments.find(' ');
    std::string_view token = arguments.substr(0, sp);
    arguments = sp == std::string_view::npos ? std::string_view{} : arguments.substr(sp);
    any = true;

    std::size_t eq = token.find('=');
    if (eq == std::string_view::npos || eq + 1 == token.size()) return refuse("501 5.5.4 Error: attribute=value expected");
    std::string_view name = token.substr(0, eq), raw = token.substr(eq + 1);
    if (raw.size() > kMaxValue) return refuse("501 5.5.4 Error: attribute value too long");
    std::string value = sanitized(xtext_decode(raw).value_or(std::string(raw)));
    std::optional<std::string> stored;
    if (iequals(value, kUnavailable)) {
      stored = std::string(kUnavailable);
    } else if (iequals(value, kTempUnavailable)) {
      stored = std::string(kTempUnavailable);
    }
    auto bad = [&](std::string_view what) { return refuse("501 5.5.4 Bad XFORWARD " + std::string(what) + " syntax: " + value); };
    auto& a = result.attributes;
    if (iequals(name, "NAME")) {
      a.name = stored.value_or(value);
    } else if (iequals(name, "ADDR")) {
      if (!stored) {
        std::string_view ip = value;
        if (ip.size() > 5 && iequals(ip.substr(0, 5), "IPV6:")) ip.remove_prefix(5);
        std::string canonical;
        if (!ip_family(ip, &canonical)) return bad("ADDR");
        stored = canonical;
      }
      a.addr = stored;
    } else if (iequals(name, "PORT")) {
      if (!stored && !is_port(value)) return bad("PORT");
      a.port = stored.value_or(value);
    } else if (iequals(name, "PROTO")) {
      if (!stored && value.size() > kMaxProto) return bad("PROTO");
      a.proto = stored.value_or(value);
    } else if (iequals(name, "HELO")) {
      a.helo = stored.value_or(value);
    } else if (iequals(name, "IDENT")) {
      a.ident = stored.value_or(value);
    } else if (iequals(name, "SOURCE")) {
      if (!stored && !iequals(value, "LOCAL") && !iequals(value, "REMOTE")) return bad("SOURCE");
      if (!stored) std::transform(value.begin(), value.end(), value.begin(), upper);
      a.source = stored.value_or(value);
    } else {
      return refuse("501 5.5.4 Bad XFORWARD attribute name: " + sanitized(name));
    }
  }
  if (!any) return refuse("501 5.5.4 Syntax: XFORWARD attribute=value...");
  return result;
}

}  // namespace dotgate::smtp
