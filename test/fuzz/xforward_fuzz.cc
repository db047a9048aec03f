// test/fuzz/xforward_fuzz.cc — libFuzzer target for the XFORWARD a trusted peer sends
// (parse_xforward, ForwardedClient) and what dotgate makes of it (build_xforward, build_xclient).
//
// Input: one flag byte (bit i: the i-th command comes inside a transaction; 0xff: reset between
// commands), then commands separated by LF, each the text after "XFORWARD ". Aborts when a reply
// is other than 250/501/503, a refused command changed the identity, an active identity misses an
// attribute or holds a byte outside '!'..'~' (the README: nothing raw reaches logs or headers),
// the Envelope address is not an address (with port) the policies can read back, or a command
// line built from it for the MTA is over 512 octets with its CRLF, holds a CR/LF/space inside a
// value, or names an attribute twice.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>

#include "lib/smtp/command.h"
#include "lib/smtp/forwarded_client.h"

using dotgate::smtp::ClientIdentity;
using dotgate::smtp::ForwardedClient;

namespace {

bool printable(const std::string& v) {
  for (char c : v)
    if (static_cast<unsigned char>(c) < '!' || static_cast<unsigned char>(c) > '~') return false;
  return !v.empty();
}

bool is_ip(const std::string& v) {
  unsigned char b[16];
  return inet_pton(AF_INET, v.c_str(), b) == 1 || inet_pton(AF_INET6, v.c_str(), b) == 1;
}

void check_lines(const std::vector<std::string>& lines, std::string_view verb) {
  for (const auto& line : lines) {
    if (line.size() + 2 > dotgate::smtp::kMaxCommandLine) std::abort();
    if (line.compare(0, verb.size(), verb) != 0) std::abort();
    if (line.find_first_of("\r\n") != std::string::npos) std::abort();
    std::set<std::string> names;
    std::string_view rest = std::string_view(line).substr(verb.size());
    while (!rest.empty()) {
      if (rest.front() != ' ') std::abort();
      rest.remove_prefix(1);
      std::size_t sp = rest.find(' ');
      std::string_view attr = rest.substr(0, sp);
      rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
      std::size_t eq = attr.find('=');
      if (eq == std::string_view::npos || eq + 1 == attr.size()) std::abort();
      if (!names.insert(std::string(attr.substr(0, eq))).second) std::abort();
    }
  }
}

void check_identity(const ForwardedClient& f) {
  if (!f.active()) {
    if (!f.client_address().empty() || !f.helo().empty()) std::abort();
    return;
  }
  const ClientIdentity& a = *f.attributes();
  for (const auto* v : {&a.name, &a.addr, &a.port, &a.proto, &a.helo, &a.ident, &a.source})
    if (!*v || !printable(**v)) std::abort();
  std::string address = f.client_address();
  if (!address.empty()) {
    // What greylisting, rspamd and the script policy read back: "[v6]:port", "v4:port", or no port.
    std::string ip = address;
    if (ip.front() == '[') {
      std::size_t close = ip.find(']');
      if (close == std::string::npos) std::abort();
      std::string tail = ip.substr(close + 1);
      ip = ip.substr(1, close - 1);
      if (!tail.empty() && tail.front() != ':') std::abort();
    } else if (std::size_t colon = ip.find(':'); colon != std::string::npos) {
      ip = ip.substr(0, colon);
    }
    if (!is_ip(ip) || ip != *a.addr) std::abort();
  }
  static const std::vector<std::string> kXforward = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"};
  static const std::vector<std::string> kXclient = {"NAME", "ADDR", "PORT", "PROTO", "HELO"};
  check_lines(dotgate::smtp::build_xforward(a, kXforward), "XFORWARD");
  check_lines(dotgate::smtp::build_xclient(a, kXclient), "XCLIENT");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  unsigned flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  ForwardedClient f;
  for (unsigned i = 0; !in.empty() && i < 64; ++i) {
    std::size_t lf = in.find('\n');
    std::string_view command = in.substr(0, lf);
    in = lf == std::string_view::npos ? std::string_view{} : in.substr(lf + 1);
    bool in_transaction = flags != 0xff && (flags >> (i % 8)) & 1;
    std::optional<ClientIdentity> before = f.attributes();
    dotgate::smtp::Reply r = f.command(command, in_transaction);
    if (r.code != 250 && r.code != 501 && r.code != 503) std::abort();
    if (r.code != 250 && f.attributes() != before) std::abort();
    if (r.code == 503 && !in_transaction) std::abort();
    check_identity(f);
    if (flags == 0xff) f.reset();
  }
  return 0;
}
