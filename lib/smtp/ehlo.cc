// lib/smtp/ehlo.cc — reading the downstream's EHLO keywords and building the list the client sees.
//
// Called by the Session when the downstream answers EHLO positively. Pure; owns nothing. Why each
// extension is kept or dropped is written in ehlo.h; the order of the rebuilt list is fixed (name,
// PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN, ENHANCEDSTATUSCODES, AUTH, PRDR, XFORWARD) so tests
// and clients see one stable form whatever order the MTA used.
#include "lib/smtp/ehlo.h"
#include "lib/smtp/forwarded_client.h"

#include <algorithm>
#include <string_view>

namespace dotgate::smtp {
namespace {

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) out.push_back(ascii_upper(c));
  return out;
}

// The keyword of an EHLO line ("SIZE 1000" -> "SIZE", "AUTH=LOGIN" -> "AUTH=LOGIN"), upper-cased.
std::string keyword_of(std::string_view line) {
  std::size_t sp = line.find(' ');
  return upper(line.substr(0, sp));
}

std::string_view params_of(std::string_view line) {
  std::size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return {};
  line.remove_prefix(sp);
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  return line;
}

// "SIZE 10240000": the number, or 0 when absent, malformed or absurdly large (then the MTA gave
// us no usable limit, and ours, if any, is announced).
std::uint64_t parse_size(std::string_view s) {
  std::size_t end = s.find(' ');
  s = s.substr(0, end);
  if (s.empty() || s.size() > 19) return 0;
  std::uint64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

// Space-separated words, upper-cased, each once: AUTH mechanisms, XCLIENT/XFORWARD attributes.
void add_words(std::string_view list, std::vector<std::string>& out) {
  while (!list.empty()) {
    while (!list.empty() && list.front() == ' ') list.remove_prefix(1);
    std::size_t sp = list.find(' ');
    std::string mech = upper(list.substr(0, sp));
    list = sp == std::string_view::npos ? std::string_view{} : list.substr(sp);
    if (!mech.empty() && std::find(out.begin(), out.end(), mech) == out.end()) {
      out.push_back(std::move(mech));
    }
  }
}

bool is_auth_line(std::string_view line) {
  std::string kw = keyword_of(line);
  return kw == "AUTH" || kw.rfind("AUTH=", 0) == 0;
}

}  // namespace

EhloCapabilities parse_ehlo(const Reply& reply) {
  EhloCapabilities caps;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = reply.lines[i];
    std::string kw = keyword_of(line);
    if (kw == "PIPELINING") {
      caps.pipelining = true;
    } else if (kw == "SIZE") {
      caps.size = true;
      caps.size_limit = parse_size(params_of(line));
    } else if (kw == "8BITMIME") {
      caps.eightbitmime = true;
    } else if (kw == "SMTPUTF8") {
      caps.smtputf8 = true;
    } else if (kw == "ENHANCEDSTATUSCODES") {
      caps.enhancedstatuscodes = true;
    } else if (kw == "DSN") {
      caps.dsn = true;
    } else if (kw == "STARTTLS") {
      caps.starttls = true;
    } else if (kw == "CHUNKING") {
      caps.chunking = true;
    } else if (kw == "PRDR") {
      caps.prdr = true;
    } else if (kw == "XCLIENT") {
      caps.xclient = true;
      add_words(params_of(line), caps.xclient_attributes);
    } else if (kw == "XFORWARD") {
      caps.xforward = true;
      add_words(params_of(line), caps.xforward_attributes);
    } else if (kw == "AUTH") {
      add_words(params_of(line), caps.auth_mechanisms);
    } else if (kw.rfind("AUTH=", 0) == 0) {
      // Old form for pre-RFC 4954 clients: "AUTH=PLAIN LOGIN".
      add_words(line.substr(5), caps.auth_mechanisms);
    }
  }
  return caps;
}

Reply rewrite_ehlo(const Reply& downstream, const EhloOffer& offer) {
  EhloCapabilities caps = parse_ehlo(downstream);
  Reply reply;
  reply.code = downstream.code;
  reply.lines.push_back(downstream.lines.empty() ? std::string{} : downstream.lines.front());
  // dotgate pipelines to the client whatever the MTA does: it serialises downstream if needed.
  reply.lines.emplace_back("PIPELINING");

  // SIZE: the smaller of the two limits; a limit we enforce is announced even when the MTA
  // announces none, so clients learn it before sending the body.
  std::uint64_t size = 0;
  if (caps.size_limit != 0 && offer.max_message_size != 0) {
    size = std::min(caps.size_limit, offer.max_message_size);
  } else if (offer.max_message_size != 0) {
    size = offer.max_message_size;
  } else {
    size = caps.size_limit;
  }
  if (size != 0) {
    reply.lines.push_back("SIZE " + std::to_string(size));
  } else if (caps.size) {
    reply.lines.emplace_back("SIZE");
  }

  if (caps.eightbitmime) reply.lines.emplace_back("8BITMIME");
  if (caps.smtputf8) reply.lines.emplace_back("SMTPUTF8");
  if (caps.dsn) reply.lines.emplace_back("DSN");
  // Unless told otherwise: dotgate's own replies carry enhanced codes and the enhanced_codes
  // built-in (lib/smtp/reply_builtins.h) adds them to the downstream's.
  if (offer.enhanced_status_codes) reply.lines.emplace_back("ENHANCEDSTATUSCODES");
  if (offer.auth_passthrough) {
    for (std::size_t i = 1; i < downstream.lines.size(); ++i) {
      if (is_auth_line(downstream.lines[i])) reply.lines.push_back(downstream.lines[i]);
    }
  }
  if (offer.prdr) reply.lines.emplace_back("PRDR");
  if (offer.starttls) reply.lines.emplace_back("STARTTLS");  // dotgate's own, never the MTA's
  if (offer.xforward) reply.lines.emplace_back(kXforwardOffer);
  return reply;
}

}  // namespace dotgate::smtp
